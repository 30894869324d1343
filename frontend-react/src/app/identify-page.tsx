import { useEffect, type ReactNode } from 'react';
import { FeedbackPanel } from '@/features/feedback/components/feedback-panel';
import { CropStep } from '@/features/identify/components/crop-step';
import { IdentificationResult } from '@/features/identify/components/identification-result';
import { IdentifyError } from '@/features/identify/components/identify-error';
import { IdentifyProgress } from '@/features/identify/components/identify-progress';
import { ObservationPanel } from '@/features/identify/components/observation-panel';
import { OfflineReadiness } from '@/features/identify/components/offline-readiness';
import { PhotoPicker } from '@/features/identify/components/photo-picker';
import { useIdentification, type ObservationPhoto } from '@/features/identify/hooks/use-identification';
import type { OnDeviceStatus } from '@/features/identify/hooks/use-on-device-model';
import type { Identification, PhotoView, Place } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { speciesChoicesOf } from './species-choices';

export type QueuedAnswer = { queueId: string; result: Identification };

/** An observation from the history to go on with: its photos, its answer, the view to add. */
export type ResumeRequest = { photos: ObservationPhoto[]; result: Identification; view: PhotoView | null };

type IdentifyPageProps = {
  isOnline: boolean;
  /** Where and when, when the person allowed it (rounded on this phone); null otherwise. */
  place: Place | null;
  onIdentified: (result: Identification, photos: ObservationPhoto[]) => void;
  onQueue: (photos: ObservationPhoto[], place: Place | null) => Promise<string>;
  onDevice: {
    status: OnDeviceStatus;
    identify: (photos: { blob: Blob; view: PhotoView | null }[], place: Place | null, topK: number) => Promise<Identification> | null;
  };
  /** The latest queued photo identified after the connection returned. */
  queuedAnswer: QueuedAnswer | null;
  /** Bumped when the person asks for a new photo from the navigation. */
  newPhotoRequests: number;
  /** Set when the person goes on with an observation from the history (a new object each time). */
  resumeRequest?: ResumeRequest | null;
  /** The location question (asked once) and its setting, on the home screen. */
  locationSlot?: ReactNode;
  settingsSlot?: ReactNode;
};

/** The main flow: pick a photo, frame it, wait, read the answer, add the photo it asks for, give feedback. */
export function IdentifyPage({
  isOnline,
  place,
  onIdentified,
  onQueue,
  onDevice,
  queuedAnswer,
  newPhotoRequests,
  resumeRequest = null,
  locationSlot,
  settingsSlot,
}: IdentifyPageProps) {
  const { state, identify, confirmCrop, cancelAdding, addPhoto, resume, retry, reset, showQueuedResult } = useIdentification({
    isOnline,
    place,
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

  useEffect(() => {
    if (resumeRequest) resume(resumeRequest.photos, resumeRequest.result, resumeRequest.view);
  }, [resumeRequest, resume]);

  switch (state.status) {
    case 'idle':
      return (
        <>
          <PhotoPicker onPhoto={(file) => void identify(file)} />
          {locationSlot}
          <OfflineReadiness status={onDevice.status} />
          <aside className="disclaimer" aria-labelledby="home-disclaimer-heading">
            <h3 id="home-disclaimer-heading">{t.disclaimerHeading}</h3>
            <p>{t.disclaimer}</p>
          </aside>
          {settingsSlot}
        </>
      );
    case 'adding':
      return (
        <>
          <PhotoPicker
            onPhoto={(file) => void identify(file)}
            heading={t.observation.addingHeading(state.view ? t.views.names[state.view] : null)}
            hint={state.view ? t.views.hints[state.view] : t.picker.hint}
          />
          <button type="button" className="button" onClick={cancelAdding}>
            {t.observation.cancelAdding}
          </button>
        </>
      );
    case 'cropping':
      return (
        <CropStep
          photo={state.candidate.blob}
          view={state.view}
          onUse={(crop, view) => void confirmCrop(crop, view)}
          onCancel={cancelAdding}
        />
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
      return <IdentifyError error={state.error} canRetry={state.photos.length > 0} onRetry={retry} onDismiss={reset} />;
    case 'done': {
      const first = state.photos[0]?.blob ?? null;
      return (
        <>
          <IdentificationResult
            result={state.result}
            photo={state.photos.length === 1 ? first : null}
            isOnline={isOnline}
            focusOnMount
            onNewPhoto={reset}
            observationSlot={
              <ObservationPanel
                result={state.result}
                photos={state.photos.map((photo) => ({ blob: photo.blob, view: photo.view }))}
                onAddPhoto={addPhoto}
              />
            }
            feedbackSlot={
              state.result.source === 'server' && first ? (
                <FeedbackPanel
                  key={state.result.request_id}
                  requestId={state.result.request_id}
                  photo={first}
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
}
