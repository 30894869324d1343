import { apiClient, photoFormData, type IdentificationPublic } from '@/client/api-client';
import { apiErrorFromResponse, toApiError } from '@/lib/api-error';

/** POST /predict: the species, verdict and look-alikes for one photo. Throws ApiError. */
export async function identifyPhoto(
  photo: Blob,
  fileName: string,
  topK: number,
  signal?: AbortSignal,
): Promise<IdentificationPublic> {
  try {
    const { data, error, response } = await apiClient.POST('/predict', {
      params: { query: { top_k: topK } },
      body: { file: [] },
      bodySerializer: () => photoFormData(photo, fileName),
      signal,
    });
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}
