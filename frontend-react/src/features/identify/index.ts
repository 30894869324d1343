export { IdentificationResult } from './components/identification-result';
export { IdentifyError } from './components/identify-error';
export { IdentifyProgress } from './components/identify-progress';
export { OfflineReadiness } from './components/offline-readiness';
export { PhotoPicker } from './components/photo-picker';
export { identifyPhoto } from './api/identify-photo';
export { useIdentification, type IdentifyState } from './hooks/use-identification';
export { useOnDeviceModel, type OnDeviceStatus } from './hooks/use-on-device-model';
