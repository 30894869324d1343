import type { IdentificationPublic } from '@/client/api-client';

/** Who answered: the API, or the model on this phone (offline, or the API unreachable or too slow). */
export type AnswerSource = 'server' | 'device';

/** An answer as the app keeps and shows it. */
export type Identification = IdentificationPublic & { source: AnswerSource };

/** Answers stored before the phone could answer itself came from the server. */
export function withSource(result: IdentificationPublic & { source?: AnswerSource }): Identification {
  return { ...result, source: result.source ?? 'server' };
}
