import { useCallback, useEffect, useRef, useState } from 'react';
import { env } from '@/config/env';
import { ApiError } from '@/lib/api-error';
import { preparePhoto, type PreparedPhoto } from '@/lib/downscale-image';
import type { Identification } from '@/lib/identification';
import { identifyPhoto } from '../api/identify-photo';

export type IdentifyState =
  | { status: 'idle' }
  | { status: 'preparing' }
  | { status: 'uploading'; photo: PreparedPhoto }
  | { status: 'on-device'; photo: PreparedPhoto }
  | { status: 'done'; result: Identification; photo: PreparedPhoto }
  | { status: 'queued'; photo: PreparedPhoto; queueId: string }
  | { status: 'error'; error: ApiError; photo: PreparedPhoto | null };

export type IdentifyOptions = {
  /** Whether the browser believes it is online; offline photos go to the phone's model, or the queue. */
  isOnline: boolean;
  onIdentified?: (result: Identification, photo: PreparedPhoto) => void;
  /** Keeps a photo that could not be identified for later; resolves to its queue id once stored. */
  onQueue?: (photo: PreparedPhoto) => Promise<string>;
  /** Identifies on this phone; null when its model is not loaded. */
  identifyOnDevice?: (photo: Blob, topK: number) => Promise<Identification> | null;
};

/**
 * Prepares (downscales) and identifies one photo at a time; a new photo cancels the one in flight.
 * Online the API answers; offline, or when the API fails to answer within `env.apiTimeoutMs`, the
 * model on this phone does, and without one the photo waits in the queue.
 */
export function useIdentification({ isOnline, onIdentified, onQueue, identifyOnDevice }: IdentifyOptions) {
  const [state, setState] = useState<IdentifyState>({ status: 'idle' });
  const controllerRef = useRef<AbortController | null>(null);
  const callbacksRef = useRef({ onIdentified, onQueue, isOnline, identifyOnDevice });
  useEffect(() => {
    callbacksRef.current = { onIdentified, onQueue, isOnline, identifyOnDevice };
  });

  useEffect(() => () => controllerRef.current?.abort(), []);

  const send = useCallback(async (photo: PreparedPhoto) => {
    controllerRef.current?.abort();
    const controller = new AbortController();
    controllerRef.current = controller;
    const callbacks = callbacksRef.current;

    const onDevice = async (): Promise<boolean> => {
      const pending = callbacks.identifyOnDevice?.(photo.blob, env.topK) ?? null;
      if (!pending) return false;
      setState({ status: 'on-device', photo });
      try {
        const result = await pending;
        if (controller.signal.aborted) return true;
        setState({ status: 'done', result, photo });
        callbacks.onIdentified?.(result, photo);
      } catch (error) {
        console.error('on-device identification failed', error);
        return false;
      }
      return true;
    };
    const queue = async (): Promise<boolean> => {
      if (!callbacks.onQueue) return false;
      const queueId = await callbacks.onQueue(photo);
      if (!controller.signal.aborted) setState({ status: 'queued', photo, queueId });
      return true;
    };

    if (!callbacks.isOnline) {
      if ((await onDevice()) || (await queue())) return;
    }
    setState({ status: 'uploading', photo });
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
      const answer = await identifyPhoto(photo.blob, photo.fileName, env.topK, server.signal);
      if (controller.signal.aborted) return;
      const result: Identification = { ...answer, source: 'server' };
      setState({ status: 'done', result, photo });
      callbacks.onIdentified?.(result, photo);
    } catch (error) {
      if (controller.signal.aborted) return;
      const apiError = timedOut ? new ApiError('network', null, null) : error instanceof ApiError ? error : new ApiError('unknown', null, null);
      if (apiError.isNetwork) {
        if (await onDevice()) return;
        if (await queue()) return;
      }
      setState({ status: 'error', error: apiError, photo });
    } finally {
      window.clearTimeout(timer);
      controller.signal.removeEventListener('abort', cancel);
    }
  }, []);

  const identify = useCallback(
    async (file: File) => {
      controllerRef.current?.abort();
      controllerRef.current = null;
      setState({ status: 'preparing' });
      const photo = await preparePhoto(file, env.uploadMaxSide, env.uploadJpegQuality);
      await send(photo);
    },
    [send],
  );

  const retry = useCallback(() => {
    if (state.status === 'error' && state.photo) void send(state.photo);
  }, [send, state]);

  const reset = useCallback(() => {
    controllerRef.current?.abort();
    controllerRef.current = null;
    setState({ status: 'idle' });
  }, []);

  /** A queued photo was identified (the connection returned): its answer replaces the waiting card. */
  const showQueuedResult = useCallback((queueId: string, result: Identification) => {
    setState((previous) =>
      previous.status === 'queued' && previous.queueId === queueId ? { status: 'done', result, photo: previous.photo } : previous,
    );
  }, []);

  return { state, identify, retry, reset, showQueuedResult };
}
