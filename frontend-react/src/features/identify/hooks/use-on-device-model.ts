import { useCallback, useEffect, useRef, useState } from 'react';
import type { Identification, Place } from '@/lib/identification';
import { runObservationOnDevice, type DevicePhoto, type ObservationAnswer } from '../on-device/identify-observation';
import { loadModelKit, offlineReadiness, storeForOffline, type ModelKit } from '../on-device/model-kit';
import type { RulesDocument } from '../on-device/rules';

export type OnDeviceStatus =
  | { state: 'loading' }
  | { state: 'ready'; kit: ModelKit; stored: boolean; bytes: number }
  | { state: 'unavailable'; reason: string };

/**
 * The model on this phone: loaded (and stored for offline use by the service worker) on start and
 * again whenever the connection returns, so a new model the API serves replaces the old one.
 */
export function useOnDeviceModel(isOnline: boolean) {
  const [status, setStatus] = useState<OnDeviceStatus>({ state: 'loading' });
  const kitRef = useRef<ModelKit | null>(null);

  useEffect(() => {
    let cancelled = false;
    void (async () => {
      try {
        const kit = await loadModelKit();
        kitRef.current = kit;
        exposeObservationForDiagnostics(kit);
        let readiness = await offlineReadiness(kit.rules);
        if (!cancelled) setStatus({ state: 'ready', kit, ...readiness });
        if (!readiness.stored && !cancelled) {
          await storeForOffline(kit.rules);
          readiness = await offlineReadiness(kit.rules);
          if (!cancelled) setStatus({ state: 'ready', kit, ...readiness });
        }
      } catch (error) {
        // Keep a model loaded earlier in this page: it still answers.
        if (!cancelled && !kitRef.current) {
          setStatus({ state: 'unavailable', reason: error instanceof Error ? error.message : String(error) });
        }
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [isOnline]);

  /** Identifies an observation on this phone; null when no model is loaded. */
  const identify = useCallback((photos: DevicePhoto[], place: Place | null, topK: number): Promise<Identification> | null => {
    const kit = kitRef.current;
    return kit ? runObservationOnDevice(kit, photos, place, topK).then((answer) => answer.result) : null;
  }, []);

  return { status, identify };
}

declare global {
  interface Window {
    /** For timing and debugging: an observation answered by the loaded model kit. */
    mushroomIdObservation?: {
      rules: RulesDocument;
      run: (photos: DevicePhoto[], place: Place | null, topK: number) => Promise<ObservationAnswer>;
    };
  }
}

function exposeObservationForDiagnostics(kit: ModelKit): void {
  window.mushroomIdObservation = { rules: kit.rules, run: (photos, place, topK) => runObservationOnDevice(kit, photos, place, topK) };
}
