import { useCallback, useEffect, useRef, useState } from 'react';
import type { Identification } from '@/lib/identification';
import { identifyOnDevice, loadModelKit, offlineReadiness, storeForOffline, type ModelKit } from '../on-device/model-kit';

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

  /** Identifies on this phone; null when no model is loaded. */
  const identify = useCallback((photo: Blob, topK: number): Promise<Identification> | null => {
    const kit = kitRef.current;
    return kit ? identifyOnDevice(kit, photo, topK) : null;
  }, []);

  return { status, identify };
}
