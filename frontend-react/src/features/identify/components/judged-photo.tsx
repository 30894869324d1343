import { useEffect, useMemo } from 'react';
import { t } from '@/lib/i18n';
import { useHeatmap } from '../hooks/use-heatmap';

type JudgedPhotoProps = {
  photo: Blob;
  /** The species the heat map explains; null hides the heat map (no mushroom found). */
  species: string | null;
  speciesName: string;
  isOnline: boolean;
  /** Answered on this phone: the heat map needs the server. */
  onDevice: boolean;
};

/** The photo that was judged; on demand, the occlusion heat map (where the model looked) in its place. */
export function JudgedPhoto({ photo, species, speciesName, isOnline, onDevice }: JudgedPhotoProps) {
  const { state, toggle } = useHeatmap(photo, species);
  const photoUrl = useMemo(() => URL.createObjectURL(photo), [photo]);
  useEffect(() => () => URL.revokeObjectURL(photoUrl), [photoUrl]);
  const shown = state.status === 'shown';
  const canExplain = species !== null && isOnline;
  return (
    <section className="card judged-photo" aria-label={t.result.photoAlt}>
      <figure className="judged-photo__figure" id="heatmap-panel" aria-live="polite">
        {shown ? (
          <img className="judged-photo__image" src={state.url} alt={t.heatmap.alt(speciesName)} />
        ) : (
          <img className="judged-photo__image" src={photoUrl} alt={t.result.photoAlt} data-testid="judged-photo" />
        )}
      </figure>
      {species !== null ? (
        <>
          <button
            type="button"
            className="button"
            aria-expanded={shown}
            aria-controls="heatmap-panel"
            onClick={() => void toggle()}
            disabled={!canExplain && !shown}
          >
            {shown ? t.heatmap.hide : t.heatmap.show}
          </button>
          {!isOnline && !shown ? <p className="muted">{onDevice ? t.heatmap.onDevice : t.heatmap.offline}</p> : null}
          {state.status === 'loading' ? <p role="status">{t.heatmap.loading}</p> : null}
          {state.status === 'error' ? <p role="alert">{`${t.heatmap.failed} ${state.error.message}`}</p> : null}
        </>
      ) : null}
    </section>
  );
}
