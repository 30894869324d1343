import type { ReactNode } from 'react';
import type { IdentificationPublic } from '@/client/api-client';
import { t } from '@/lib/i18n';
import { HeatmapToggle } from './heatmap-toggle';
import { LookalikeList } from './lookalike-list';
import { PredictionList } from './prediction-list';
import { VerdictBanner } from './verdict-banner';

type IdentificationResultProps = {
  result: IdentificationPublic;
  /** The photo as uploaded; the heat map needs it. */
  photo: Blob | null;
  isOnline: boolean;
  /** Rendered after the answer (the feedback form), so this feature does not depend on others. */
  feedbackSlot?: ReactNode;
  focusOnMount?: boolean;
};

/** The whole answer: verdict first, then species, look-alikes, heat map, disclaimer and feedback. */
export function IdentificationResult({ result, photo, isOnline, feedbackSlot, focusOnMount = false }: IdentificationResultProps) {
  const top = result.predictions[0];
  const topName = top ? (top.common_names[0] ?? top.scientific_name) : '';
  return (
    <article className="result" aria-label={t.result.heading}>
      <VerdictBanner verdict={result.verdict} message={result.message} focusOnMount={focusOnMount} />
      {result.predictions.length > 0 ? <PredictionList predictions={result.predictions} /> : null}
      {result.verdict !== 'not_a_mushroom' ? <LookalikeList lookalikes={result.lookalikes} /> : null}
      {top ? <HeatmapToggle key={`${result.request_id}-${top.species}`} photo={photo} species={top.species} speciesName={topName} isOnline={isOnline} /> : null}
      <aside className="disclaimer" aria-labelledby="disclaimer-heading">
        <h3 id="disclaimer-heading">
          {t.disclaimerHeading}
        </h3>
        <p>{result.disclaimer}</p>
      </aside>
      {feedbackSlot}
      <p className="muted small">{t.result.model(result.model.name, result.model.version)}</p>
    </article>
  );
}
