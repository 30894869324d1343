import type { Place } from '@/lib/identification';
import {
  getLocalDb,
  listLocal,
  monotonicNow,
  loadQueuedPhoto,
  newId,
  putLocal,
  storeQueuedPhoto,
  type QueuedExtraPhoto,
  type QueuedPhoto,
} from '@/lib/local-db';

export type { QueuedExtraPhoto, QueuedPhoto };

/** What else a queued observation holds besides its first photo. */
export type QueueOptions = { view?: string | null; more?: QueuedExtraPhoto[]; place?: Place | null };

/** Keeps an observation (its first photo, any more, their views, the place) that could not be sent until the network returns. */
export function enqueuePhoto(photo: Blob, fileName: string, options: QueueOptions = {}): Promise<QueuedPhoto> {
  const item: QueuedPhoto = {
    id: newId(),
    createdAt: monotonicNow(),
    photo,
    fileName,
    view: options.view ?? null,
    more: options.more ?? [],
    place: options.place ?? null,
  };
  return putLocal('queue', item, storeQueuedPhoto);
}

export async function listQueue(): Promise<QueuedPhoto[]> {
  return listLocal('queue', loadQueuedPhoto);
}

export async function removeFromQueue(id: string): Promise<void> {
  const db = await getLocalDb();
  await db.delete('queue', id);
}

/**
 * Sends queued photos oldest first. A photo leaves the queue when `send` succeeds or fails for good
 * (`send` returns false for a network failure: that photo and the rest wait for the next try).
 * Returns how many photos left the queue.
 */
export async function flushQueue(send: (item: QueuedPhoto) => Promise<boolean>): Promise<number> {
  let sent = 0;
  for (const item of await listQueue()) {
    const done = await send(item);
    if (!done) break;
    await removeFromQueue(item.id);
    sent += 1;
  }
  return sent;
}
