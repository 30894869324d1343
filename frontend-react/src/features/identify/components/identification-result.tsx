import type { ReactNode } from 'react';
import { Icon } from '@/components/ui/icon';
import type { Identification } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { JudgedPhoto } from './judged-photo';
import { LookalikeList } from './lookalike-list';
import { PredictionList } from './prediction-list';
import { CautionBlock, VerdictBanner } from './verdict-banner';

type IdentificationResultProps = {
  result: Identification;
  /** The photo as judged (uploaded, or run on this phone); shown, and needed by the heat map. */
  photo: Blob | null;
  isOnline: boolean;
  /** Rendered after the answer (the feedback form), so this feature does not depend on others. */
  feedbackSlot?: ReactNode;
  focusOnMount?: boolean;
  /** Shown at the top: start again without scrolling past the whole answer. */
  onNewPhoto?: () => void;
  /** Shown right after the verdict: the observation's photos and which photo next. */
  observationSlot?: ReactNode;
};

/**
 * The whole answer: verdict first, the photo, then species, look-alikes, disclaimer and feedback.
 * "No mushroom found" shows only the advice to take another photo: species and edibility for a
 * photo without a mushroom would only mislead.
 */
export function IdentificationResult({
  result,
  photo,
  isOnline,
  feedbackSlot,
  focusOnMount = false,
  onNewPhoto,
  observationSlot,
}: IdentificationResultProps) {
  const top = result.predictions[0];
  const topName = top ? (top.common_names[0] ?? top.scientific_name) : '';
  const isMushroom = result.verdict !== 'not_a_mushroom';
  return (
    <article className="result" aria-label={t.result.heading} data-source={result.source}>
      {onNewPhoto ? (
        <button type="button" className="button button--primary new-photo-top" onClick={onNewPhoto}>
          <Icon name="camera" size={20} />
          {t.result.newPhoto}
        </button>
      ) : null}
      <VerdictBanner
        verdict={result.verdict}
        message={result.message}
        caution={result.caution ?? null}
        unknownSpeciesMessage={result.unknown_species_message ?? null}
        possiblyUnknownSpecies={result.possibly_unknown_species}
        focusOnMount={focusOnMount}
      />
      {observationSlot}
      {result.verdict === 'uncertain' && result.caution ? <CautionBlock caution={result.caution} speciesName={topName} /> : null}
      {photo ? (
        <JudgedPhoto
          key={`${result.request_id}-${top?.species ?? ''}`}
          photo={photo}
          species={isMushroom && top ? top.species : null}
          speciesName={topName}
          isOnline={isOnline}
          onDevice={result.source === 'device'}
        />
      ) : null}
      {isMushroom ? (
        <>
          {result.predictions.length > 0 ? <PredictionList predictions={result.predictions} /> : null}
          <LookalikeList lookalikes={result.lookalikes} speciesName={topName} />
        </>
      ) : (
        <section className="card" aria-labelledby="retake-heading">
          <h3 id="retake-heading">{t.picker.heading}</h3>
          <ul className="tips">
            {t.result.notAMushroomTips.map((tip) => (
              <li key={tip}>{tip}</li>
            ))}
          </ul>
        </section>
      )}
      <aside className="disclaimer" aria-labelledby="disclaimer-heading">
        <h3 id="disclaimer-heading">{t.disclaimerHeading}</h3>
        <p>{result.disclaimer}</p>
      </aside>
      {isMushroom ? feedbackSlot : null}
      <p className="muted small" data-testid="answered-by">
        {t.result.answeredBy[result.source](result.model.name, result.model.version)}
      </p>
    </article>
  );
}
