import { apiClient, photoFormData, type FeedbackCreate, type FeedbackPublic } from '@/client/api-client';
import { apiErrorFromResponse, toApiError } from '@/lib/api-error';

/** POST /feedback. Throws ApiError. */
export async function createFeedback(body: FeedbackCreate): Promise<FeedbackPublic> {
  try {
    const { data, error, response } = await apiClient.POST('/feedback', { body });
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}

/** POST /feedback/{id}/photo: only called after the person agreed to share the photo. Throws ApiError. */
export async function uploadFeedbackPhoto(feedbackId: string, photo: Blob): Promise<FeedbackPublic> {
  try {
    const { data, error, response } = await apiClient.POST('/feedback/{feedback_id}/photo', {
      params: { path: { feedback_id: feedbackId } },
      body: { file: '' },
      bodySerializer: () => photoFormData(photo),
    });
    if (data) return data;
    throw apiErrorFromResponse(response, error);
  } catch (error) {
    throw toApiError(error);
  }
}
