import { t } from '@/lib/i18n';
import type { LocationChoice } from '../api/location-choice';

type LocationPromptProps = { onChoose: (choice: LocationChoice) => void };

/** Asked once: may the app use roughly where the person is (whole degrees) and the month? */
export function LocationPrompt({ onChoose }: LocationPromptProps) {
  return (
    <section className="card location-prompt" aria-labelledby="location-heading" data-testid="location-prompt">
      <h3 id="location-heading">{t.location.heading}</h3>
      <p>{t.location.explanation}</p>
      <div className="location-prompt__buttons">
        <button type="button" className="button button--primary" onClick={() => onChoose('allowed')}>
          {t.location.allow}
        </button>
        <button type="button" className="button" onClick={() => onChoose('declined')}>
          {t.location.decline}
        </button>
      </div>
    </section>
  );
}
