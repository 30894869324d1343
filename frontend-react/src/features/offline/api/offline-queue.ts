import { getLocalDb, monotonicNow, loadQueuedPhoto, newId, storeQueuedPhoto, trackWrite, type QueuedPhoto } from '@/lib/local-db';

export type { QueuedPhoto };

/** Keeps a photo that could not be sent (offline) until the network returns. */
export function enqueuePhoto(photo: Blob, fileName: string): Promise<QueuedPhoto> {
  return trackWrite(async () => {
    const item: QueuedPhoto = { id: newId(), createdAt: monotonicNow(), photo, fileName };
    const stored = await storeQueuedPhoto(item);
    const db = await getLocalDb();
    await db.put('queue', stored);
    return item;
  });
}

export async function listQueue(): Promise<QueuedPhoto[]> {
  const db = await getLocalDb();
  return (await db.getAllFromIndex('queue', 'by-created')).map(loadQueuedPhoto);
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
