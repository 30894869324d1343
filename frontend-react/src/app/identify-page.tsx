import { useEffect } from 'react';
import { FeedbackPanel } from '@/features/feedback/components/feedback-panel';
import { IdentificationResult } from '@/features/identify/components/identification-result';
import { IdentifyError } from '@/features/identify/components/identify-error';
import { IdentifyProgress } from '@/features/identify/components/identify-progress';
import { OfflineReadiness } from '@/features/identify/components/offline-readiness';
import { PhotoPicker } from '@/features/identify/components/photo-picker';
import { useIdentification } from '@/features/identify/hooks/use-identification';
import type { OnDeviceStatus } from '@/features/identify/hooks/use-on-device-model';
import type { PreparedPhoto } from '@/lib/downscale-image';
import type { Identification } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { speciesChoicesOf } from './species-choices';

export type QueuedAnswer = { queueId: string; result: Identification };

type IdentifyPageProps = {
  isOnline: boolean;
  onIdentified: (result: Identification, photo: PreparedPhoto) => void;
  onQueue: (photo: PreparedPhoto) => Promise<string>;
  onDevice: { status: OnDeviceStatus; identify: (photo: Blob, topK: number) => Promise<Identification> | null };
  /** The latest queued photo identified after the connection returned. */
  queuedAnswer: QueuedAnswer | null;
  /** Bumped when the person asks for a new photo from the navigation. */
  newPhotoRequests: number;
};

/** The main flow: pick a photo, wait, read the answer, give feedback. */
export function IdentifyPage({ isOnline, onIdentified, onQueue, onDevice, queuedAnswer, newPhotoRequests }: IdentifyPageProps) {
  const { state, identify, retry, reset, showQueuedResult } = useIdentification({
    isOnline,
    onIdentified,
    onQueue,
    identifyOnDevice: onDevice.identify,
  });

  useEffect(() => {
    if (queuedAnswer) showQueuedResult(queuedAnswer.queueId, queuedAnswer.result);
  }, [queuedAnswer, showQueuedResult]);

  useEffect(() => {
    if (newPhotoRequests > 0) reset();
  }, [newPhotoRequests, reset]);

  switch (state.status) {
    case 'idle':
      return (
        <>
          <PhotoPicker onPhoto={(file) => void identify(file)} />
          <OfflineReadiness status={onDevice.status} />
          <aside className="disclaimer" aria-labelledby="home-disclaimer-heading">
            <h3 id="home-disclaimer-heading">{t.disclaimerHeading}</h3>
            <p>{t.disclaimer}</p>
          </aside>
        </>
      );
    case 'preparing':
    case 'uploading':
    case 'on-device':
      return <IdentifyProgress stage={state.status} onCancel={reset} />;
    case 'queued':
      return (
        <section className="card" role="status" data-testid="queued-card">
          <p>{t.offline.queuedNow}</p>
          <button type="button" className="button button--primary" onClick={reset}>
            {t.errors.dismiss}
          </button>
        </section>
      );
    case 'error':
      return <IdentifyError error={state.error} canRetry={state.photo !== null} onRetry={retry} onDismiss={reset} />;
    case 'done':
      return (
        <>
          <IdentificationResult
            result={state.result}
            photo={state.photo.blob}
            isOnline={isOnline}
            focusOnMount
            onNewPhoto={reset}
            feedbackSlot={
              state.result.source === 'server' ? (
                <FeedbackPanel
                  key={state.result.request_id}
                  requestId={state.result.request_id}
                  photo={state.photo.blob}
                  speciesChoices={speciesChoicesOf(state.result)}
                />
              ) : (
                <p className="muted">{t.result.feedbackNeedsServer}</p>
              )
            }
          />
          <button type="button" className="big-button big-button--primary new-photo" onClick={reset}>
            {t.result.newPhoto}
          </button>
        </>
      );
  }
}
