export { OfflineBanner } from './components/offline-banner';
export { useOfflineQueue } from './hooks/use-offline-queue';
export { useOnlineStatus } from './hooks/use-online-status';
export type { QueuedPhoto } from './api/offline-queue';
