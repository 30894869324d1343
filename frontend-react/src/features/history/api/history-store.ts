import type { Identification } from '@/lib/identification';
import { getLocalDb, monotonicNow, loadHistoryRecord, newId, storeHistoryRecord, trackWrite, type HistoryRecord } from '@/lib/local-db';

export type { HistoryRecord };

/** Keeps one identification on this device. */
export function addHistory(result: Identification, photo: Blob, thumbnail: Blob | null): Promise<HistoryRecord> {
  return trackWrite(async () => {
    const record: HistoryRecord = { id: newId(), createdAt: monotonicNow(), result, photo, thumbnail };
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
