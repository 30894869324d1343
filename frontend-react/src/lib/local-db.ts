import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { IdentificationPublic } from '@/client/schema';

export type HistoryRecord = {
  id: string;
  createdAt: number;
  result: IdentificationPublic;
  /** The photo as uploaded (already downscaled), kept for the heat map and for feedback. */
  photo: Blob;
  thumbnail: Blob | null;
};

export type QueuedPhoto = {
  id: string;
  createdAt: number;
  photo: Blob;
  fileName: string;
};

interface MushroomDb extends DBSchema {
  history: { key: string; value: HistoryRecord; indexes: { 'by-created': number } };
  queue: { key: string; value: QueuedPhoto; indexes: { 'by-created': number } };
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

/** Closes and forgets the connection (tests start each case from an empty database). */
export async function closeLocalDb(): Promise<void> {
  if (dbPromise) (await dbPromise).close();
  dbPromise = null;
}

export function newId(): string {
  return typeof crypto !== 'undefined' && 'randomUUID' in crypto
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
