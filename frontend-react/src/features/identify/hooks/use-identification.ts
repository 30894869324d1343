import { useCallback, useEffect, useRef, useState } from 'react';
import type { IdentificationPublic } from '@/client/api-client';
import { env } from '@/config/env';
import { ApiError } from '@/lib/api-error';
import { preparePhoto, type PreparedPhoto } from '@/lib/downscale-image';
import { identifyPhoto } from '../api/identify-photo';

export type IdentifyState =
  | { status: 'idle' }
  | { status: 'preparing' }
  | { status: 'uploading'; photo: PreparedPhoto }
  | { status: 'done'; result: IdentificationPublic; photo: PreparedPhoto }
  | { status: 'queued'; photo: PreparedPhoto }
  | { status: 'error'; error: ApiError; photo: PreparedPhoto | null };

export type IdentifyOptions = {
  /** Whether the browser believes it is online; offline photos go straight to the queue. */
  isOnline: boolean;
  onIdentified?: (result: IdentificationPublic, photo: PreparedPhoto) => void;
  /** Keeps a photo that could not be sent for later; resolves when it is stored. */
  onQueue?: (photo: PreparedPhoto) => Promise<void>;
};

/** Prepares (downscales) and identifies one photo at a time; a new photo cancels the one in flight. */
export function useIdentification({ isOnline, onIdentified, onQueue }: IdentifyOptions) {
  const [state, setState] = useState<IdentifyState>({ status: 'idle' });
  const controllerRef = useRef<AbortController | null>(null);
  const callbacksRef = useRef({ onIdentified, onQueue, isOnline });
  useEffect(() => {
    callbacksRef.current = { onIdentified, onQueue, isOnline };
  });

  useEffect(() => () => controllerRef.current?.abort(), []);

  const send = useCallback(async (photo: PreparedPhoto) => {
    controllerRef.current?.abort();
    const controller = new AbortController();
    controllerRef.current = controller;
    const callbacks = callbacksRef.current;
    if (!callbacks.isOnline && callbacks.onQueue) {
      await callbacks.onQueue(photo);
      setState({ status: 'queued', photo });
      return;
    }
    setState({ status: 'uploading', photo });
    try {
      const result = await identifyPhoto(photo.blob, photo.fileName, env.topK, controller.signal);
      if (controller.signal.aborted) return;
      setState({ status: 'done', result, photo });
      callbacks.onIdentified?.(result, photo);
    } catch (error) {
      if (controller.signal.aborted) return;
      const apiError = error instanceof ApiError ? error : new ApiError('unknown', null, null);
      if (apiError.isNetwork && callbacks.onQueue) await callbacks.onQueue(photo);
      setState({ status: 'error', error: apiError, photo });
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

  return { state, identify, retry, reset };
}
