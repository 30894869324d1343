import { useCallback, useState } from 'react';
import { ApiError } from '@/lib/api-error';
import { createFeedback, uploadFeedbackPhoto } from '../api/send-feedback';

export type FeedbackDraft = {
  correct: boolean;
  species: string | null;
  comment: string;
  sharePhoto: boolean;
};

export type FeedbackState =
  | { status: 'idle' }
  | { status: 'sending' }
  | { status: 'sent'; photoStored: boolean }
  | { status: 'error'; error: ApiError };

/** Sends feedback, then the photo only when the person ticked the box to share it. */
export function useFeedback(requestId: string, photo: Blob | null) {
  const [state, setState] = useState<FeedbackState>({ status: 'idle' });

  const submit = useCallback(
    async (draft: FeedbackDraft) => {
      setState({ status: 'sending' });
      const sharePhoto = draft.sharePhoto && photo !== null;
      try {
        const feedback = await createFeedback({
          request_id: requestId,
          correct: draft.correct,
          species: draft.correct ? null : draft.species,
          comment: draft.comment.trim() ? draft.comment.trim() : null,
          share_photo: sharePhoto,
        });
        let photoStored = feedback.photo_stored;
        if (sharePhoto && photo) photoStored = (await uploadFeedbackPhoto(feedback.id, photo)).photo_stored;
        setState({ status: 'sent', photoStored });
      } catch (error) {
        setState({ status: 'error', error: error instanceof ApiError ? error : new ApiError('unknown', null, null) });
      }
    },
    [photo, requestId],
  );

  return { state, submit };
}
