import { apiClient, photoFormData } from '@/client/api-client';
import { apiErrorFromResponse, toApiError } from '@/lib/api-error';

/** POST /explain: a PNG heat map of the photo regions behind one species' score. Throws ApiError. */
export async function explainPhoto(photo: Blob, species: string, signal?: AbortSignal): Promise<Blob> {
  try {
    const { data, error, response } = await apiClient.POST('/explain', {
      params: { query: { species } },
      body: { file: '' },
      bodySerializer: () => photoFormData(photo),
      parseAs: 'blob',
      signal,
    });
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}
