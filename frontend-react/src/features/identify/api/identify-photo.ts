import { apiClient, type IdentificationPublic } from '@/client/api-client';
import { apiErrorFromResponse, toApiError } from '@/lib/api-error';
import type { ObservationFields, Place } from '@/lib/identification';

/** One photo of an observation as it is sent: the (cropped, downscaled) photo and what it shows. */
export type ObservationUpload = { blob: Blob; fileName: string; view: string | null };

/**
 * The multipart body of POST /predict: `file` once per photo, `view` once per photo (empty when
 * not said) when any photo has one, and `lat`, `lon`, `month` when given (already rounded).
 */
export function observationFormData(photos: ObservationUpload[], place: Place | null): FormData {
  const form = new FormData();
  for (const photo of photos) form.append('file', photo.blob, photo.fileName);
  if (photos.some((photo) => photo.view !== null)) {
    for (const photo of photos) form.append('view', photo.view ?? '');
  }
  if (place && place.lat !== null && place.lon !== null) {
    form.append('lat', String(place.lat));
    form.append('lon', String(place.lon));
  }
  if (place && place.month !== null) form.append('month', String(place.month));
  return form;
}

/** POST /predict: one answer for the observation (1 to 5 photos), each photo's own top species. Throws ApiError. */
export async function identifyObservation(
  photos: ObservationUpload[],
  place: Place | null,
  topK: number,
  signal?: AbortSignal,
): Promise<IdentificationPublic & ObservationFields> {
  try {
    const { data, error, response } = await apiClient.POST('/predict', {
      params: { query: { top_k: topK } },
      body: { file: [] },
      bodySerializer: () => observationFormData(photos, place),
      signal,
    });
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}
