import type { Identification } from '@/lib/identification';
import { getLocalDb, monotonicNow, loadHistoryRecord, newId, storeHistoryRecord, trackWrite, type HistoryPhoto, type HistoryRecord } from '@/lib/local-db';

export type { HistoryPhoto, HistoryRecord };

/** Keeps one observation on this device: its answer and every photo (first photo first). */
export function addHistory(result: Identification, photos: HistoryPhoto[]): Promise<HistoryRecord> {
  const [first] = photos;
  if (!first) throw new Error('an observation has at least one photo');
  return trackWrite(async () => {
    const record: HistoryRecord = { id: newId(), createdAt: monotonicNow(), result, photo: first.photo, thumbnail: first.thumbnail, photos };
    const stored = await storeHistoryRecord(record);
    const db = await getLocalDb();
    await db.put('history', stored);
    return record;
  });
}

/** All identifications kept on this device, newest first. */
export async function listHistory(): Promise<HistoryRecord[]> {
  const db = await getLocalDb();
  const records = await db.getAllFromIndex('history', 'by-created');
  return records.reverse().map(loadHistoryRecord);
}

export async function clearHistory(): Promise<void> {
  const db = await getLocalDb();
  await db.clear('history');
}
