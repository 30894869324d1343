import type { SpeciesPredictionPublic } from '@/client/api-client';
import { EdibilityBadge } from '@/components/ui/edibility-badge';
import { t } from '@/lib/i18n';

function percent(probability: number): number {
  return Math.round(Math.min(1, Math.max(0, probability)) * 100);
}

/** Never "0%" or "100%": a model is never that sure, and a forager should not read it so. */
function probabilityText(value: number): string {
  if (value < 1) return t.result.probabilityBelowOne;
  if (value > 99) return t.result.probabilityAboveMax;
  return t.result.probability(value);
}

/** The top species, best first, each with a probability bar, names and edibility. */
export function PredictionList({ predictions }: { predictions: SpeciesPredictionPublic[] }) {
  return (
    <section className="card" aria-labelledby="top-species-heading">
      <h3 id="top-species-heading">{t.result.topSpecies}</h3>
      <ol className="predictions" data-testid="prediction-list">
        {predictions.map((prediction) => {
          const value = percent(prediction.probability);
          const commonName = prediction.common_names[0];
          return (
            <li key={prediction.species} className="prediction" data-species={prediction.species}>
              <div className="prediction__names">
                <span className="prediction__scientific" lang="la">
                  {prediction.scientific_name}
                </span>
                {commonName ? <span className="prediction__common">{commonName}</span> : null}
              </div>
              <div className="prediction__meta">
                <span className="prediction__percent">
                  {probabilityText(value)}
                </span>
                <EdibilityBadge edibility={prediction.edibility} />
              </div>
              <div className="bar" aria-hidden="true">
                <div className="bar__fill" style={{ width: `${value}%` }} />
              </div>
            </li>
          );
        })}
      </ol>
    </section>
  );
}
