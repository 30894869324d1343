import { useEffect, useRef } from 'react';
import type { CautionPublic, Verdict } from '@/client/api-client';
import { Icon, type IconName } from '@/components/ui/icon';
import { t } from '@/lib/i18n';
import { LookalikeNames } from './lookalike-names';

const ICONS: Record<Verdict, IconName> = {
  dangerous: 'skull',
  edible: 'check',
  uncertain: 'question',
  not_a_mushroom: 'no-image',
};

type VerdictBannerProps = {
  verdict: Verdict;
  message: string;
  /** "Do not eat, it could be ...": set with an `uncertain` verdict when a dangerous look-alike is not ruled out. */
  caution?: CautionPublic | null;
  /** The answer's sentence about a species the model may never have learned (null: not flagged). */
  unknownSpeciesMessage?: string | null;
  /** The answer's flag; without a sentence (older answers) the app's own sentence is shown. */
  possiblyUnknownSpecies?: boolean;
  /** Move keyboard and screen-reader focus here when the banner appears. */
  focusOnMount?: boolean;
};

/**
 * The verdict, first and unmistakable: colour, icon and words together, so it reads in sunlight and
 * without colour vision. A dangerous verdict is an alert so screen readers announce it at once. A
 * caution ("do not eat, it could be ...") keeps the uncertain colour but says "Do not eat it"; the
 * unknown-species sentence is part of the verdict, whatever the verdict.
 */
export function VerdictBanner({
  verdict,
  message,
  caution = null,
  unknownSpeciesMessage = null,
  possiblyUnknownSpecies = false,
  focusOnMount = false,
}: VerdictBannerProps) {
  const headingRef = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (focusOnMount) headingRef.current?.focus();
  }, [focusOnMount, verdict]);
  const cautioned = verdict === 'uncertain' && caution !== null;
  const unknownSentence = unknownSpeciesMessage ?? (possiblyUnknownSpecies ? t.verdict.unknownSpecies : null);

  return (
    <section
      className={`verdict verdict--${verdict}${cautioned ? ' verdict--caution' : ''}`}
      data-testid="verdict-banner"
      data-verdict={verdict}
      data-caution={cautioned ? 'true' : undefined}
      role={verdict === 'dangerous' || cautioned ? 'alert' : 'status'}
      aria-labelledby="verdict-title"
    >
      <Icon name={cautioned ? 'warning' : ICONS[verdict]} size={48} className="verdict__icon" />
      <div className="verdict__text">
        <h2 id="verdict-title" className="verdict__title" tabIndex={-1} ref={headingRef}>
          {cautioned ? t.verdict.caution.title : t.verdict.titles[verdict]}
        </h2>
        <p className="verdict__subtitle">{cautioned ? t.verdict.caution.subtitle : t.verdict.subtitles[verdict]}</p>
        {message ? <p className="verdict__message">{message}</p> : null}
        {unknownSentence && verdict !== 'not_a_mushroom' ? (
          <p className="verdict__unknown" data-testid="unknown-species">
            <strong>{t.verdict.unknownSpeciesLabel}: </strong>
            {unknownSentence}
          </p>
        ) : null}
      </div>
    </section>
  );
}

function percentText(probability: number): string {
  if (probability >= 0.995) return t.result.probabilityAboveMax;
  if (probability < 0.01) return t.result.probabilityBelowOne;
  return t.result.probability(Math.round(probability * 100));
}

/** The dangerous species a caution names: each with its edibility, the telling feature and the photo that shows it. */
export function CautionBlock({ caution, speciesName }: { caution: CautionPublic; speciesName: string }) {
  return (
    <section className="card caution" aria-labelledby="caution-heading" data-testid="caution">
      <h3 id="caution-heading">{t.verdict.caution.heading}</h3>
      <p>{t.verdict.caution.intro(speciesName)}</p>
      <ul className="lookalikes">
        {caution.lookalikes.map((lookalike) => {
          const name = lookalike.common_names[0] ?? lookalike.scientific_name;
          return (
            <li key={lookalike.species} className="lookalike lookalike--dangerous" data-species={lookalike.species}>
              <LookalikeNames lookalike={lookalike} />
              <p className="muted small">
                {lookalike.probability === null
                  ? t.verdict.caution.notLearned
                  : t.verdict.caution.likely(percentText(lookalike.probability).toLowerCase())}
              </p>
              {lookalike.distinguishing_feature ? (
                <p className="lookalike__feature">
                  <strong>{t.verdict.caution.howToTell(name)}</strong> {lookalike.distinguishing_feature}
                </p>
              ) : null}
              {lookalike.view ? (
                <p data-view={lookalike.view}>
                  <strong>{t.verdict.caution.photoShowsIt}</strong> {t.verdict.caution.views[lookalike.view]}
                </p>
              ) : null}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
