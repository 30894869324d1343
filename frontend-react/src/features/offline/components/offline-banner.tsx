import { Icon } from '@/components/ui/icon';
import { t } from '@/lib/i18n';

type OfflineBannerProps = {
  isOnline: boolean;
  queued: number;
  justSent: number;
  /** The model on this phone answers while offline. */
  identifiesOnDevice?: boolean;
};

/** Says plainly when the app is offline and how many photos wait; says when queued photos were identified. */
export function OfflineBanner({ isOnline, queued, justSent, identifiesOnDevice = false }: OfflineBannerProps) {
  return (
    <div aria-live="polite" className="offline-region">
      {!isOnline ? (
        <div className="offline-banner" data-testid="offline-banner">
          <Icon name="offline" size={24} />
          <p>{identifiesOnDevice ? t.offline.bannerOnDevice : t.offline.banner}</p>
        </div>
      ) : null}
      {queued > 0 ? <p className="queue-note">{t.offline.queued(queued)}</p> : null}
      {isOnline && justSent > 0 && queued === 0 ? <p className="queue-note">{t.offline.sentFromQueue}</p> : null}
    </div>
  );
}
