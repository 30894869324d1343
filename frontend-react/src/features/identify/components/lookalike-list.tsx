import type { LookalikePublic } from '@/client/api-client';
import { EdibilityBadge, isDangerousEdibility } from '@/components/ui/edibility-badge';
import { t } from '@/lib/i18n';

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

/** The top species' look-alikes with the feature that tells each apart. */
export function LookalikeList({ lookalikes }: { lookalikes: LookalikePublic[] }) {
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
                <div className="lookalike__header">
                  <span className="prediction__scientific" lang="la">
                    {lookalike.scientific_name}
                  </span>
                  <EdibilityBadge edibility={lookalike.edibility} />
                </div>
                {lookalike.common_names[0] ? <span className="prediction__common">{lookalike.common_names[0]}</span> : null}
                <p className="lookalike__feature">
                  <strong>{t.result.howToTell}</strong> {lookalike.distinguishing_feature}
                </p>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
