import { Icon } from '@/components/ui/icon';
import { t } from '@/lib/i18n';
import type { OnDeviceStatus } from '../hooks/use-on-device-model';

/** Says whether this phone can identify without a connection, and how big the download was. */
export function OfflineReadiness({ status }: { status: OnDeviceStatus }) {
  if (status.state === 'loading') {
    return (
      <p className="readiness" role="status" data-testid="offline-readiness" data-state="loading">
        {t.onDevice.loading}
      </p>
    );
  }
  if (status.state === 'unavailable') {
    return (
      <p className="readiness muted" data-testid="offline-readiness" data-state="unavailable">
        {t.onDevice.unavailable}
      </p>
    );
  }
  const megabytes = (status.bytes / 1_000_000).toFixed(1);
  return (
    <p
      className="readiness readiness--ready"
      role="status"
      data-testid="offline-readiness"
      data-state={status.stored ? 'ready' : 'loaded'}
      data-bytes={status.bytes}
      data-accelerator={status.kit.accelerator}
      data-load-ms={Math.round(status.kit.loadMs)}
    >
      <Icon name="check" size={20} />
      {status.stored ? t.onDevice.ready(megabytes) : t.onDevice.loadedNotStored}
    </p>
  );
}
