import type { Identification } from '@/lib/identification';
import { getLocalDb, listLocal, monotonicNow, loadHistoryRecord, newId, putLocal, storeHistoryRecord, type HistoryPhoto, type HistoryRecord } from '@/lib/local-db';

export type { HistoryPhoto, HistoryRecord };

/** Keeps one observation on this device: its answer and every photo (first photo first). */
export function addHistory(result: Identification, photos: HistoryPhoto[]): Promise<HistoryRecord> {
  const [first] = photos;
  if (!first) throw new Error('an observation has at least one photo');
  const record: HistoryRecord = { id: newId(), createdAt: monotonicNow(), result, photo: first.photo, thumbnail: first.thumbnail, photos };
  return putLocal('history', record, storeHistoryRecord);
}

/** All identifications kept on this device, newest first. */
export async function listHistory(): Promise<HistoryRecord[]> {
  return (await listLocal('history', loadHistoryRecord)).reverse();
}

export async function clearHistory(): Promise<void> {
  const db = await getLocalDb();
  await db.clear('history');
}
