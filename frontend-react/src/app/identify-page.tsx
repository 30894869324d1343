import type { IdentificationPublic } from '@/client/api-client';
import { FeedbackPanel } from '@/features/feedback';
import {
  IdentificationResult,
  IdentifyError,
  IdentifyProgress,
  PhotoPicker,
  useIdentification,
} from '@/features/identify';
import type { PreparedPhoto } from '@/lib/downscale-image';
import { t } from '@/lib/i18n';
import { speciesChoicesOf } from './species-choices';

type IdentifyPageProps = {
  isOnline: boolean;
  onIdentified: (result: IdentificationPublic, photo: PreparedPhoto) => void;
  onQueue: (photo: PreparedPhoto) => Promise<void>;
};

/** The main flow: pick a photo, wait, read the answer, give feedback. */
export function IdentifyPage({ isOnline, onIdentified, onQueue }: IdentifyPageProps) {
  const { state, identify, retry, reset } = useIdentification({ isOnline, onIdentified, onQueue });

  switch (state.status) {
    case 'idle':
      return <PhotoPicker onPhoto={(file) => void identify(file)} />;
    case 'preparing':
    case 'uploading':
      return <IdentifyProgress stage={state.status} onCancel={reset} />;
    case 'queued':
      return (
        <section className="card" role="status">
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
            feedbackSlot={
              <FeedbackPanel
                key={state.result.request_id}
                requestId={state.result.request_id}
                photo={state.photo.blob}
                speciesChoices={speciesChoicesOf(state.result)}
              />
            }
          />
          <button type="button" className="big-button big-button--primary new-photo" onClick={reset}>
            {t.result.newPhoto}
          </button>
        </>
      );
  }
}
