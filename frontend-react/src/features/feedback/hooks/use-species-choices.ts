import { useEffect, useState } from 'react';
import { listSpecies } from '../api/list-species';

export type SpeciesChoice = { id: string; label: string };

/** The given choices first (the predicted species), then the rest of the catalog once it loads. */
export function useSpeciesChoices(initial: SpeciesChoice[], enabled: boolean): SpeciesChoice[] {
  const [catalog, setCatalog] = useState<SpeciesChoice[]>([]);
  useEffect(() => {
    if (!enabled) return;
    let cancelled = false;
    listSpecies()
      .then((species) => {
        if (cancelled) return;
        setCatalog(
          species.map((item) => {
            const common = item.common_names.en?.[0];
            return { id: item.id, label: common ? `${item.scientific_name} (${common})` : item.scientific_name };
          }),
        );
      })
      // Without the catalog the predicted species remain to choose from.
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [enabled]);
  const seen = new Set(initial.map((choice) => choice.id));
  return [...initial, ...catalog.filter((choice) => !seen.has(choice.id))];
}
