import { useCallback, useMemo, useState } from 'react';
import { Icon } from '@/components/ui/icon';
import { env } from '@/config/env';
import { addHistory, type HistoryRecord } from '@/features/history/api/history-store';
import { identifyObservation } from '@/features/identify/api/identify-photo';
import type { ObservationPhoto } from '@/features/identify/hooks/use-identification';
import { useOnDeviceModel } from '@/features/identify/hooks/use-on-device-model';
import { LocationPrompt } from '@/features/location/components/location-prompt';
import { LocationSetting } from '@/features/location/components/location-setting';
import { useLocation } from '@/features/location/hooks/use-location';
import type { QueuedPhoto } from '@/features/offline/api/offline-queue';
import { OfflineBanner } from '@/features/offline/components/offline-banner';
import { useOfflineQueue } from '@/features/offline/hooks/use-offline-queue';
import { useOnlineStatus } from '@/features/offline/hooks/use-online-status';
import { ApiError } from '@/lib/api-error';
import { makeThumbnail } from '@/lib/downscale-image';
import { isPhotoView, type Identification, type PhotoView, type Place } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { HistoryPage } from './history-page';
import { IdentifyPage, type QueuedAnswer, type ResumeRequest } from './identify-page';

type Screen = 'identify' | 'history';

// Worth another try later: the request never reached a working server.
const TRANSIENT = new Set(['network', 'unavailable', 'rateLimited']);

/** The app shell: header, navigation, offline banner; it wires the features together. */
export function App() {
  const isOnline = useOnlineStatus();
  const [screen, setScreen] = useState<Screen>('identify');
  const [historyVersion, setHistoryVersion] = useState(0);
  const [queuedAnswer, setQueuedAnswer] = useState<QueuedAnswer | null>(null);
  const [newPhotoRequests, setNewPhotoRequests] = useState(0);
  const [resumeRequest, setResumeRequest] = useState<ResumeRequest | null>(null);
  const onDevice = useOnDeviceModel(isOnline);

  const location = useLocation();
  const position = location.state.status === 'ready' ? location.state.position : null;
  // Sent only when the person allowed it: whole degrees (rounded on this phone) and this month.
  const place = useMemo<Place | null>(
    () => (position ? { lat: position.lat, lon: position.lon, month: new Date().getMonth() + 1 } : null),
    [position],
  );

  const saveToHistory = useCallback(async (result: Identification, photos: { blob: Blob; view: string | null }[]) => {
    const kept = [];
    for (const item of photos) kept.push({ photo: item.blob, thumbnail: await makeThumbnail(item.blob), view: item.view });
    await addHistory(result, kept);
    setHistoryVersion((version) => version + 1);
  }, []);

  const sendQueued = useCallback(
    async (item: QueuedPhoto) => {
      try {
        const photos = [
          { blob: item.photo, fileName: item.fileName, view: item.view ?? null },
          ...(item.more ?? []).map((extra) => ({ blob: extra.photo, fileName: extra.fileName, view: extra.view })),
        ].map((photo) => ({ ...photo, view: isPhotoView(photo.view) ? photo.view : null }));
        const answer = await identifyObservation(photos, item.place ?? null, env.topK);
        const result: Identification = { ...answer, source: 'server' };
        await saveToHistory(result, photos);
        setQueuedAnswer({ queueId: item.id, result });
        return true;
      } catch (error) {
        // A photo the API refuses for good (not an image, too large) leaves the queue.
        return !(error instanceof ApiError && TRANSIENT.has(error.kind));
      }
    },
    [saveToHistory],
  );

  const queue = useOfflineQueue({ isOnline, send: sendQueued });
  const onIdentified = useCallback(
    (result: Identification, photos: ObservationPhoto[]) => void saveToHistory(result, photos),
    [saveToHistory],
  );
  const { enqueue } = queue;
  const onQueue = useCallback(
    (photos: ObservationPhoto[], where: Place | null) => {
      const [first, ...more] = photos;
      if (!first) return Promise.reject(new Error('an observation has at least one photo'));
      return enqueue(first.blob, first.fileName, {
        view: first.view,
        more: more.map((photo) => ({ photo: photo.blob, fileName: photo.fileName, view: photo.view })),
        place: where,
      });
    },
    [enqueue],
  );

  const continueObservation = useCallback((record: HistoryRecord, view: PhotoView | null) => {
    setResumeRequest({
      photos: record.photos.map((item, index) => ({
        id: `${record.id}-${index}`,
        blob: item.photo,
        fileName: `photo-${index + 1}.jpg`,
        view: isPhotoView(item.view) ? item.view : null,
      })),
      result: record.result,
      view,
    });
    setScreen('identify');
  }, []);

  return (
    <>
      <a className="skip-link" href="#main">
        {t.app.skipToContent}
      </a>
      <header className="app-header">
        <h1 className="app-title">{t.app.title}</h1>
        <nav aria-label={t.app.mainNavigation}>
          <ul className="tabs">
            <li>
              <button
                type="button"
                className="tab"
                aria-current={screen === 'identify' ? 'page' : undefined}
                onClick={() => {
                  // On the Identify screen already (reading an answer): start a new photo.
                  if (screen === 'identify') setNewPhotoRequests((count) => count + 1);
                  setScreen('identify');
                }}
              >
                <Icon name="camera" size={20} />
                {t.app.navIdentify}
              </button>
            </li>
            <li>
              <button
                type="button"
                className="tab"
                aria-current={screen === 'history' ? 'page' : undefined}
                onClick={() => setScreen('history')}
              >
                <Icon name="history" size={20} />
                {t.app.navHistory}
              </button>
            </li>
          </ul>
        </nav>
      </header>
      <OfflineBanner
        isOnline={isOnline}
        queued={queue.count}
        justSent={queue.lastFlushed}
        identifiesOnDevice={onDevice.status.state === 'ready'}
      />
      <main id="main" className="app-main" tabIndex={-1}>
        {/* Both stay mounted so an identification in flight survives a look at the history. */}
        <div hidden={screen !== 'identify'}>
          <IdentifyPage
            isOnline={isOnline}
            onIdentified={onIdentified}
            onQueue={onQueue}
            onDevice={onDevice}
            queuedAnswer={queuedAnswer}
            newPhotoRequests={newPhotoRequests}
            resumeRequest={resumeRequest}
            place={place}
            locationSlot={location.choice === null ? <LocationPrompt onChoose={location.setChoice} /> : null}
            settingsSlot={<LocationSetting choice={location.choice} state={location.state} onChange={location.setChoice} />}
          />
        </div>
        <div hidden={screen !== 'history'}>
          <HistoryPage version={historyVersion} isOnline={isOnline} onContinue={continueObservation} />
        </div>
      </main>
    </>
  );
}
