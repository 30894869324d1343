import { t } from '@/lib/i18n';
import { useHeatmap } from '../hooks/use-heatmap';

type HeatmapToggleProps = {
  photo: Blob | null;
  species: string;
  speciesName: string;
  isOnline: boolean;
};

/** Shows the occlusion heat map (where the model looked) on demand; it costs a request, so never by default. */
export function HeatmapToggle({ photo, species, speciesName, isOnline }: HeatmapToggleProps) {
  const { state, toggle } = useHeatmap(photo, species);
  const shown = state.status === 'shown';
  if (!photo) return null;
  return (
    <section className="card heatmap">
      <button
        type="button"
        className="button"
        aria-expanded={shown}
        aria-controls="heatmap-panel"
        onClick={() => void toggle()}
        disabled={!isOnline && !shown}
      >
        {shown ? t.heatmap.hide : t.heatmap.show}
      </button>
      <div id="heatmap-panel" aria-live="polite">
        {!isOnline && !shown ? <p className="muted">{t.heatmap.offline}</p> : null}
        {state.status === 'loading' ? <p role="status">{t.heatmap.loading}</p> : null}
        {state.status === 'error' ? <p role="alert">{`${t.heatmap.failed} ${state.error.message}`}</p> : null}
        {shown ? <img className="heatmap__image" src={state.url} alt={t.heatmap.alt(speciesName)} /> : null}
      </div>
    </section>
  );
}
