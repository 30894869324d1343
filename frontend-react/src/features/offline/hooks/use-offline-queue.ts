import { useCallback, useEffect, useRef, useState } from 'react';
import { enqueuePhoto, flushQueue, listQueue, type QueueOptions, type QueuedPhoto } from '../api/offline-queue';

type UseOfflineQueueOptions = {
  isOnline: boolean;
  /** Identifies one queued photo; false means "network still down, keep it". */
  send: (item: QueuedPhoto) => Promise<boolean>;
  /** How often queued photos are retried while the browser says it is online. */
  retryMs?: number;
};

/** The offline photo queue: its size, a way to add to it, and a flush whenever the network returns. */
export function useOfflineQueue({ isOnline, send, retryMs = 30_000 }: UseOfflineQueueOptions) {
  const [count, setCount] = useState(0);
  const [lastFlushed, setLastFlushed] = useState(0);
  const sendRef = useRef(send);
  const flushingRef = useRef(false);
  useEffect(() => {
    sendRef.current = send;
  });

  const refresh = useCallback(async () => setCount((await listQueue()).length), []);

  const flush = useCallback(async () => {
    if (flushingRef.current) return;
    flushingRef.current = true;
    try {
      const sent = await flushQueue((item) => sendRef.current(item));
      if (sent > 0) setLastFlushed(sent);
    } finally {
      flushingRef.current = false;
      await refresh();
    }
  }, [refresh]);

  const enqueue = useCallback(
    async (photo: Blob, fileName: string, options?: QueueOptions): Promise<string> => {
      const item = await enqueuePhoto(photo, fileName, options);
      await refresh();
      return item.id;
    },
    [refresh],
  );

  // Flush on start and whenever the browser comes back online.
  useEffect(() => {
    if (isOnline) void flush();
    else void refresh();
  }, [isOnline, flush, refresh]);

  // A server that was unreachable while the browser stayed online sends no event: retry now and then.
  useEffect(() => {
    if (!isOnline || count === 0) return;
    const timer = window.setInterval(() => void flush(), retryMs);
    return () => window.clearInterval(timer);
  }, [isOnline, count, flush, retryMs]);

  // The `online` event also fires when the state did not visibly change (a flaky connection came back).
  useEffect(() => {
    const onOnline = () => void flush();
    window.addEventListener('online', onOnline);
    return () => window.removeEventListener('online', onOnline);
  }, [flush]);

  return { count, lastFlushed, enqueue, flush };
}
