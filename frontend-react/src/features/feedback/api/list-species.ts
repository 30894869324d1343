import { apiClient, type SpeciesPublic } from '@/client/api-client';
import { apiErrorFromResponse, toApiError } from '@/lib/api-error';

/** GET /species: the catalog, to let a person name the right species. Throws ApiError. */
export async function listSpecies(): Promise<SpeciesPublic[]> {
  try {
    const { data, error, response } = await apiClient.GET('/species');
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}
