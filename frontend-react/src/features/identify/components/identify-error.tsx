import { useEffect, useRef } from 'react';
import { Icon } from '@/components/ui/icon';
import type { ApiError } from '@/lib/api-error';
import { t } from '@/lib/i18n';

type IdentifyErrorProps = {
  error: ApiError;
  canRetry: boolean;
  onRetry: () => void;
  onDismiss: () => void;
};

// A photo that failed for want of a network is already queued and retried by the app: no button for it.
const RETRYABLE = new Set(['rateLimited', 'unavailable', 'unknown']);

/** A failed identification: what happened in plain words, and what to do next. */
export function IdentifyError({ error, canRetry, onRetry, onDismiss }: IdentifyErrorProps) {
  const headingRef = useRef<HTMLHeadingElement>(null);
  useEffect(() => headingRef.current?.focus(), [error]);
  return (
    <section className="error-box" role="alert" data-testid="identify-error" data-error-kind={error.kind}>
      <Icon name="warning" size={32} />
      <div>
        <h2 tabIndex={-1} ref={headingRef}>
          {error.title}
        </h2>
        <p>{error.message}</p>
        <div className="row">
          {canRetry && RETRYABLE.has(error.kind) ? (
            <button type="button" className="button button--primary" onClick={onRetry}>
              {t.errors.tryAgain}
            </button>
          ) : null}
          <button type="button" className="button" onClick={onDismiss}>
            {t.errors.dismiss}
          </button>
        </div>
      </div>
    </section>
  );
}
