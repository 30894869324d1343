import { useId, useState, type FormEvent } from 'react';
import { t } from '@/lib/i18n';
import { useFeedback } from '../hooks/use-feedback';
import { useSpeciesChoices, type SpeciesChoice } from '../hooks/use-species-choices';

type FeedbackPanelProps = {
  requestId: string;
  /** The uploaded photo; offered for sharing only with the person's explicit consent. */
  photo: Blob | null;
  /** Species the person can pick when the answer was wrong. */
  speciesChoices: SpeciesChoice[];
};

const COMMENT_MAX = 1000;

/** "This is right" sends at once; "This is wrong" asks what it is, and asks before sending the photo. */
export function FeedbackPanel({ requestId, photo, speciesChoices }: FeedbackPanelProps) {
  const { state, submit } = useFeedback(requestId, photo);
  const [mode, setMode] = useState<'choose' | 'right' | 'wrong'>('choose');
  const [species, setSpecies] = useState('');
  const [comment, setComment] = useState('');
  const [sharePhoto, setSharePhoto] = useState(false);
  const choices = useSpeciesChoices(speciesChoices, mode === 'wrong');
  const ids = { species: useId(), comment: useId(), share: useId(), shareHint: useId() };

  if (state.status === 'sent') {
    return (
      <section className="card feedback" aria-label={t.feedback.heading}>
        <p role="status">{state.photoStored ? t.feedback.thanksWithPhoto : t.feedback.thanks}</p>
      </section>
    );
  }

  const sending = state.status === 'sending';
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    void submit({ correct: mode === 'right', species: species || null, comment, sharePhoto });
  };

  return (
    <section className="card feedback" aria-labelledby="feedback-heading">
      <h3 id="feedback-heading">{t.feedback.heading}</h3>
      <div className="row" role="group" aria-labelledby="feedback-heading">
        {(['right', 'wrong'] as const).map((choice) => (
          <button
            key={choice}
            type="button"
            className="button"
            aria-pressed={mode === choice}
            onClick={() => setMode(choice)}
            disabled={sending}
          >
            {t.feedback[choice]}
          </button>
        ))}
      </div>
      {mode !== 'choose' ? (
        <form className="feedback__form" onSubmit={onSubmit}>
          {mode === 'wrong' ? (
            <div className="field">
              <label htmlFor={ids.species}>{t.feedback.whichSpecies}</label>
              <select id={ids.species} value={species} onChange={(event) => setSpecies(event.target.value)}>
                <option value="">{t.feedback.unknownSpecies}</option>
                {choices.map((choice) => (
                  <option key={choice.id} value={choice.id}>
                    {choice.label}
                  </option>
                ))}
              </select>
            </div>
          ) : null}
          <div className="field">
            <label htmlFor={ids.comment}>{t.feedback.comment}</label>
            <textarea
              id={ids.comment}
              value={comment}
              maxLength={COMMENT_MAX}
              rows={3}
              onChange={(event) => setComment(event.target.value)}
            />
          </div>
          {photo ? (
            <div className="field field--checkbox">
              <input
                id={ids.share}
                type="checkbox"
                checked={sharePhoto}
                onChange={(event) => setSharePhoto(event.target.checked)}
                aria-describedby={ids.shareHint}
              />
              <label htmlFor={ids.share}>{t.feedback.sharePhoto}</label>
              <p id={ids.shareHint} className="muted small">
                {t.feedback.sharePhotoHint}
              </p>
            </div>
          ) : null}
          <button type="submit" className="button button--primary" disabled={sending}>
            {sending ? t.feedback.sending : t.feedback.send}
          </button>
          {state.status === 'error' ? (
            <p role="alert" className="form-error">
              {`${t.feedback.failed} ${state.error.message}`}
            </p>
          ) : null}
        </form>
      ) : null}
    </section>
  );
}
