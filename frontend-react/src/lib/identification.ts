import type { IdentificationPublic, NextPhotoPublic, PhotoPublic, PhotoView as PhotoViewPublic, PriorPublic } from '@/client/api-client';

/** Who answered: the API, or the model on this phone (offline, or the API unreachable or too slow). */
export type AnswerSource = 'server' | 'device';

/** What a photo of an observation shows (the catalog's `PhotoView`). */
export type PhotoView = PhotoViewPublic;

export const PHOTO_VIEWS: readonly PhotoView[] = ['cap', 'underside', 'stem_base', 'ring', 'flesh', 'spore_print', 'habitat'];

export const isPhotoView = (value: unknown): value is PhotoView => PHOTO_VIEWS.includes(value as PhotoView);

/** The most photos of one observation (POST /predict takes `file` 1 to 5 times). */
export const MAX_PHOTOS = 5;

/** One photo of the observation and the species it alone looks most like (`photos[]` of /predict). */
export type PhotoTop = PhotoPublic;

/** The photo that would tell the likely species from a dangerous look-alike (`next_photo`). */
export type NextPhoto = NextPhotoPublic;

/** Whether a location or month re-weighted the answer (`prior`). */
export type PriorUsed = PriorPublic;

/** The observation fields of /predict (optional: absent in answers stored before observations). */
export type ObservationFields = Pick<IdentificationPublic, 'photos' | 'next_photo' | 'prior'>;

/** An answer as the app keeps and shows it. */
export type Identification = IdentificationPublic & ObservationFields & { source: AnswerSource };

/** Answers stored before the phone could answer itself came from the server. */
export function withSource(result: IdentificationPublic & ObservationFields & { source?: AnswerSource }): Identification {
  return { ...result, source: result.source ?? 'server' };
}

/** Where and when, as sent with an observation: location rounded to whole degrees on this phone, month 1-12. */
export type Place = { lat: number | null; lon: number | null; month: number | null };
