import type { LookalikePublic } from '@/client/api-client';
import { isDangerousEdibility } from '@/components/ui/edibility-badge';
import { t } from '@/lib/i18n';
import { LookalikeNames } from './lookalike-names';

/** Dangerous look-alikes first, keeping the API's order otherwise. */
export function sortLookalikes(lookalikes: LookalikePublic[]): LookalikePublic[] {
  return lookalikes
    .map((lookalike, index) => ({ lookalike, index }))
    .sort((a, b) => {
      const danger = Number(isDangerousEdibility(b.lookalike.edibility)) - Number(isDangerousEdibility(a.lookalike.edibility));
      return danger !== 0 ? danger : a.index - b.index;
    })
    .map(({ lookalike }) => lookalike);
}

/** The catalog writes each feature as '<the predicted species' trait> vs <the look-alike's trait>'. */
export function splitFeature(feature: string): { species: string; lookalike: string } | null {
  const parts = feature.split(/\s+vs\.?\s+/);
  if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
  return { species: parts[0], lookalike: parts[1] };
}

function TellApart({ feature, speciesName, lookalikeName }: { feature: string; speciesName: string; lookalikeName: string }) {
  const sides = splitFeature(feature);
  return (
    <div className="lookalike__feature">
      <p>
        <strong>{t.result.howToTell(speciesName, lookalikeName)}</strong>
        {sides ? null : ` ${feature}`}
      </p>
      {sides ? (
        <dl className="tell-apart">
          <div>
            <dt>{t.result.traitOf(speciesName)}</dt>
            <dd>{sides.species}</dd>
          </div>
          <div>
            <dt>{t.result.traitOf(lookalikeName)}</dt>
            <dd>{sides.lookalike}</dd>
          </div>
        </dl>
      ) : null}
    </div>
  );
}

/** The top species' look-alikes with the feature that tells each apart, each side named. */
export function LookalikeList({ lookalikes, speciesName }: { lookalikes: LookalikePublic[]; speciesName: string }) {
  return (
    <section className="card" aria-labelledby="lookalikes-heading">
      <h3 id="lookalikes-heading">{t.result.lookalikes}</h3>
      {lookalikes.length === 0 ? (
        <p>{t.result.noLookalikes}</p>
      ) : (
        <>
          <p className="muted">{t.result.lookalikesIntro}</p>
          <ul className="lookalikes" data-testid="lookalike-list">
            {sortLookalikes(lookalikes).map((lookalike) => (
              <li
                key={lookalike.species}
                className={`lookalike${isDangerousEdibility(lookalike.edibility) ? ' lookalike--dangerous' : ''}`}
                data-species={lookalike.species}
              >
                <LookalikeNames lookalike={lookalike} />
                <TellApart
                  feature={lookalike.distinguishing_feature}
                  speciesName={speciesName}
                  lookalikeName={lookalike.common_names[0] ?? lookalike.scientific_name}
                />
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
