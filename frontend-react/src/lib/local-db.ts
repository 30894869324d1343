import { openDB, type DBSchema, type IDBPDatabase, type StoreNames, type StoreValue } from 'idb';
import { withSource, type Identification, type Place } from './identification';

/** Bytes and type of a Blob: stored instead of the Blob, which some Safari versions cannot keep in IndexedDB. */
export type StoredBlob = { bytes: ArrayBuffer; type: string };

export async function toStoredBlob(blob: Blob): Promise<StoredBlob> {
  return { bytes: await blob.arrayBuffer(), type: blob.type };
}

export function fromStoredBlob(stored: StoredBlob): Blob {
  return new Blob([stored.bytes], { type: stored.type });
}

/** One photo of an observation kept in the history: as sent (downscaled, cropped), its thumbnail, its view. */
export type HistoryPhoto = { photo: Blob; thumbnail: Blob | null; view: string | null };

export type HistoryRecord = {
  id: string;
  createdAt: number;
  /** The observation's answer, with each photo's top species and the next-photo prompt. */
  result: Identification;
  /** The first photo as uploaded (already downscaled), kept for the heat map and for feedback. */
  photo: Blob;
  thumbnail: Blob | null;
  /** Every photo of the observation, the first included (records from before observations: the one photo). */
  photos: HistoryPhoto[];
};

/** One more photo of a queued observation, after the first. */
export type QueuedExtraPhoto = { photo: Blob; fileName: string; view: string | null };

export type QueuedPhoto = {
  id: string;
  createdAt: number;
  /** The observation's first photo. */
  photo: Blob;
  fileName: string;
  /** Absent in items queued before observations: one photo, no view, no place. */
  view?: string | null;
  more?: QueuedExtraPhoto[];
  /** Where and when, as it would have been sent (rounded, with consent); null without. */
  place?: Place | null;
};

type StoredHistoryPhoto = { photo: StoredBlob; thumbnail: StoredBlob | null; view: string | null };
type StoredHistoryRecord = Omit<HistoryRecord, 'photo' | 'thumbnail' | 'photos'> & {
  photo: StoredBlob;
  thumbnail: StoredBlob | null;
  /** Absent in records stored before observations. */
  photos?: StoredHistoryPhoto[];
};
type StoredQueuedPhoto = Omit<QueuedPhoto, 'photo' | 'more'> & {
  photo: StoredBlob;
  more?: (Omit<QueuedExtraPhoto, 'photo'> & { photo: StoredBlob })[];
};

export async function storeHistoryRecord(record: HistoryRecord): Promise<StoredHistoryRecord> {
  const photos: StoredHistoryPhoto[] = [];
  for (const item of record.photos) {
    photos.push({
      photo: await toStoredBlob(item.photo),
      thumbnail: item.thumbnail ? await toStoredBlob(item.thumbnail) : null,
      view: item.view,
    });
  }
  return {
    ...record,
    photo: await toStoredBlob(record.photo),
    thumbnail: record.thumbnail ? await toStoredBlob(record.thumbnail) : null,
    photos,
  };
}

export function loadHistoryRecord(stored: StoredHistoryRecord): HistoryRecord {
  const photo = fromStoredBlob(stored.photo);
  const thumbnail = stored.thumbnail ? fromStoredBlob(stored.thumbnail) : null;
  return {
    ...stored,
    result: withSource(stored.result),
    photo,
    thumbnail,
    photos: stored.photos
      ? stored.photos.map((item) => ({
          photo: fromStoredBlob(item.photo),
          thumbnail: item.thumbnail ? fromStoredBlob(item.thumbnail) : null,
          view: item.view,
        }))
      : [{ photo, thumbnail, view: null }],
  };
}

export async function storeQueuedPhoto(item: QueuedPhoto): Promise<StoredQueuedPhoto> {
  const more = [];
  for (const extra of item.more ?? []) more.push({ ...extra, photo: await toStoredBlob(extra.photo) });
  return { ...item, photo: await toStoredBlob(item.photo), more };
}

export function loadQueuedPhoto(stored: StoredQueuedPhoto): QueuedPhoto {
  return {
    ...stored,
    photo: fromStoredBlob(stored.photo),
    more: (stored.more ?? []).map((extra) => ({ ...extra, photo: fromStoredBlob(extra.photo) })),
  };
}

interface MushroomDb extends DBSchema {
  history: { key: string; value: StoredHistoryRecord; indexes: { 'by-created': number } };
  queue: { key: string; value: StoredQueuedPhoto; indexes: { 'by-created': number } };
}

const DB_NAME = 'mushroom-id';
const DB_VERSION = 1;

let dbPromise: Promise<IDBPDatabase<MushroomDb>> | null = null;

/** The app's one IndexedDB database (history and the offline queue), opened once. */
export function getLocalDb(): Promise<IDBPDatabase<MushroomDb>> {
  dbPromise ??= openDB<MushroomDb>(DB_NAME, DB_VERSION, {
    upgrade(db) {
      db.createObjectStore('history', { keyPath: 'id' }).createIndex('by-created', 'createdAt');
      db.createObjectStore('queue', { keyPath: 'id' }).createIndex('by-created', 'createdAt');
    },
  });
  return dbPromise;
}

const pendingWrites = new Set<Promise<unknown>>();

/** Runs a write and remembers it until it settles, so closing the database never cuts it off. */
export function trackWrite<T>(write: () => Promise<T>): Promise<T> {
  const promise = write();
  pendingWrites.add(promise);
  const forget = () => pendingWrites.delete(promise);
  promise.then(forget, forget);
  return promise;
}

/** Keeps `value` in `store` as `toStored` writes it, as one tracked write; resolves to `value`. */
export function putLocal<N extends StoreNames<MushroomDb>, T>(
  store: N,
  value: T,
  toStored: (value: T) => Promise<StoreValue<MushroomDb, N>>,
): Promise<T> {
  return trackWrite(async () => {
    const stored = await toStored(value);
    const db = await getLocalDb();
    await db.put(store, stored);
    return value;
  });
}

/** Everything in `store`, oldest first, as `load` reads it back. */
export async function listLocal<N extends StoreNames<MushroomDb>, T>(store: N, load: (stored: StoreValue<MushroomDb, N>) => T): Promise<T[]> {
  const db = await getLocalDb();
  return (await db.getAllFromIndex(store, 'by-created')).map(load);
}

/** Waits for pending writes, then closes and forgets the connection (tests start each case empty). */
export async function closeLocalDb(): Promise<void> {
  while (pendingWrites.size > 0) await Promise.allSettled([...pendingWrites]);
  if (dbPromise) (await dbPromise).close();
  dbPromise = null;
}

let lastTimestamp = 0;

/** Milliseconds since the epoch, strictly increasing within this page, so records sort in creation order. */
export function monotonicNow(): number {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  return lastTimestamp;
}

export function newId(): string {
  return typeof crypto !== 'undefined' && 'randomUUID' in crypto
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
