import type { IdentificationPublic } from '@/client/api-client';

/** The predicted species, offered first when a person says the answer was wrong. */
export function speciesChoicesOf(result: IdentificationPublic): { id: string; label: string }[] {
  return result.predictions.map((prediction) => ({
    id: prediction.species,
    label: prediction.common_names[0]
      ? `${prediction.scientific_name} (${prediction.common_names[0]})`
      : prediction.scientific_name,
  }));
}
