import { useCallback, useEffect, useRef, useState } from 'react';
import { env } from '@/config/env';
import { ApiError } from '@/lib/api-error';
import { cropPhoto, preparePhoto, type CropRect, type PreparedPhoto } from '@/lib/downscale-image';
import { MAX_PHOTOS, type Identification, type PhotoView, type Place } from '@/lib/identification';
import { newId } from '@/lib/local-db';
import { identifyObservation } from '../api/identify-photo';

/** One photo of the observation as it is identified: downscaled, cropped, and what it shows. */
export type ObservationPhoto = { id: string; blob: Blob; fileName: string; view: PhotoView | null };

export type IdentifyState =
  | { status: 'idle' }
  /** Picking one more photo for the observation (of `view` when the answer asked for one). */
  | { status: 'adding'; view: PhotoView | null; photos: ObservationPhoto[]; previous: Identification | null }
  | { status: 'preparing'; photos: ObservationPhoto[] }
  /** The person frames the new photo before it joins the observation. */
  | { status: 'cropping'; candidate: PreparedPhoto; view: PhotoView | null; photos: ObservationPhoto[]; previous: Identification | null }
  | { status: 'uploading'; photos: ObservationPhoto[] }
  | { status: 'on-device'; photos: ObservationPhoto[] }
  | { status: 'done'; result: Identification; photos: ObservationPhoto[] }
  | { status: 'queued'; photos: ObservationPhoto[]; queueId: string }
  | { status: 'error'; error: ApiError; photos: ObservationPhoto[] };

export type IdentifyOptions = {
  /** Whether the browser believes it is online; offline photos go to the phone's model, or the queue. */
  isOnline: boolean;
  /** Where and when (rounded on this phone), sent only when the person allowed it; null otherwise. */
  place?: Place | null;
  onIdentified?: (result: Identification, photos: ObservationPhoto[]) => void;
  /** Keeps an observation that could not be identified for later (with its place); resolves to its queue id. */
  onQueue?: (photos: ObservationPhoto[], place: Place | null) => Promise<string>;
  /** Identifies the observation on this phone; null when its model is not loaded. */
  identifyOnDevice?: (photos: { blob: Blob; view: PhotoView | null }[], place: Place | null, topK: number) => Promise<Identification> | null;
};

const uploads = (photos: ObservationPhoto[]) => photos.map(({ blob, fileName, view }) => ({ blob, fileName, view }));

/**
 * An observation: up to five photos of one mushroom, each framed (cropped) by the person, one
 * answer. Every new photo sends the whole observation again; a new request cancels the one in
 * flight. Online the API answers; offline, or when the API fails to answer within
 * `env.apiTimeoutMs`, the model on this phone does, and without one the observation waits in the
 * queue.
 */
export function useIdentification({ isOnline, place = null, onIdentified, onQueue, identifyOnDevice }: IdentifyOptions) {
  const [state, setState] = useState<IdentifyState>({ status: 'idle' });
  const controllerRef = useRef<AbortController | null>(null);
  const callbacksRef = useRef({ onIdentified, onQueue, isOnline, identifyOnDevice, place });
  useEffect(() => {
    callbacksRef.current = { onIdentified, onQueue, isOnline, identifyOnDevice, place };
  });

  useEffect(() => () => controllerRef.current?.abort(), []);

  const send = useCallback(async (photos: ObservationPhoto[]) => {
    controllerRef.current?.abort();
    const controller = new AbortController();
    controllerRef.current = controller;
    const callbacks = callbacksRef.current;
    const where = callbacks.place;

    const onDevice = async (): Promise<boolean> => {
      const pending = callbacks.identifyOnDevice?.(uploads(photos), where, env.topK) ?? null;
      if (!pending) return false;
      setState({ status: 'on-device', photos });
      try {
        const result = await pending;
        if (controller.signal.aborted) return true;
        setState({ status: 'done', result, photos });
        callbacks.onIdentified?.(result, photos);
      } catch (error) {
        console.error('on-device identification failed', error);
        return false;
      }
      return true;
    };
    const queue = async (): Promise<boolean> => {
      if (!callbacks.onQueue) return false;
      const queueId = await callbacks.onQueue(photos, where);
      if (!controller.signal.aborted) setState({ status: 'queued', photos, queueId });
      return true;
    };

    if (!callbacks.isOnline) {
      if ((await onDevice()) || (await queue())) return;
    }
    setState({ status: 'uploading', photos });
    // A server that is up but too slow (a weak signal) is given up on, as an unreachable one is.
    const server = new AbortController();
    let timedOut = false;
    const timer = window.setTimeout(() => {
      timedOut = true;
      server.abort();
    }, env.apiTimeoutMs);
    const cancel = () => server.abort();
    controller.signal.addEventListener('abort', cancel);
    try {
      const answer = await identifyObservation(uploads(photos), where, env.topK, server.signal);
      if (controller.signal.aborted) return;
      const result: Identification = { ...answer, source: 'server' };
      setState({ status: 'done', result, photos });
      callbacks.onIdentified?.(result, photos);
    } catch (error) {
      if (controller.signal.aborted) return;
      const apiError = timedOut ? new ApiError('network', null, null) : error instanceof ApiError ? error : new ApiError('unknown', null, null);
      if (apiError.isNetwork) {
        if (await onDevice()) return;
        if (await queue()) return;
      }
      setState({ status: 'error', error: apiError, photos });
    } finally {
      window.clearTimeout(timer);
      controller.signal.removeEventListener('abort', cancel);
    }
  }, []);

  /** A photo was picked: downscale it, then let the person frame it. */
  const identify = useCallback(async (file: File) => {
    controllerRef.current?.abort();
    controllerRef.current = null;
    const adding = state.status === 'adding' ? state : null;
    const photos = adding ? adding.photos : [];
    setState({ status: 'preparing', photos });
    const candidate = await preparePhoto(file, env.uploadMaxSide, env.uploadJpegQuality);
    setState({ status: 'cropping', candidate, view: adding?.view ?? null, photos, previous: adding?.previous ?? null });
  }, [state]);

  /** The person framed the photo (the whole photo unless they moved the box): it joins the observation. */
  const confirmCrop = useCallback(
    async (crop: CropRect, view: PhotoView | null) => {
      if (state.status !== 'cropping') return;
      const cropped = await cropPhoto(state.candidate, crop, env.uploadJpegQuality);
      const photo: ObservationPhoto = { id: newId(), blob: cropped.blob, fileName: cropped.fileName, view };
      await send([...state.photos, photo].slice(0, MAX_PHOTOS));
    },
    [send, state],
  );

  /** Leaves the crop (or the picker for one more photo): back to the answer, or home. */
  const cancelAdding = useCallback(() => {
    if (state.status !== 'cropping' && state.status !== 'adding') return;
    setState(state.previous ? { status: 'done', result: state.previous, photos: state.photos } : { status: 'idle' });
  }, [state]);

  /** Asks for one more photo of the same mushroom (of `view`, when the answer asked for one). */
  const addPhoto = useCallback(
    (view: PhotoView | null) => {
      if (state.status !== 'done' || state.photos.length >= MAX_PHOTOS) return;
      setState({ status: 'adding', view, photos: state.photos, previous: state.result });
    },
    [state],
  );

  /** Goes on with an observation kept in the history: its photos and answer, one more photo (of `view`). */
  const resume = useCallback((photos: ObservationPhoto[], result: Identification, view: PhotoView | null) => {
    controllerRef.current?.abort();
    controllerRef.current = null;
    if (photos.length === 0 || photos.length >= MAX_PHOTOS) {
      setState({ status: 'done', result, photos });
      return;
    }
    setState({ status: 'adding', view, photos, previous: result });
  }, []);

  const retry = useCallback(() => {
    if (state.status === 'error' && state.photos.length > 0) void send(state.photos);
  }, [send, state]);

  const reset = useCallback(() => {
    controllerRef.current?.abort();
    controllerRef.current = null;
    setState({ status: 'idle' });
  }, []);

  /** A queued photo was identified (the connection returned): its answer replaces the waiting card. */
  const showQueuedResult = useCallback((queueId: string, result: Identification) => {
    setState((previous) =>
      previous.status === 'queued' && previous.queueId === queueId ? { status: 'done', result, photos: previous.photos } : previous,
    );
  }, []);

  return { state, identify, confirmCrop, cancelAdding, addPhoto, resume, retry, reset, showQueuedResult };
}
