import { Icon } from '@/components/ui/icon';
import { MAX_PHOTOS, isPhotoView, type Identification, type PhotoView } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { useObjectUrl } from '@/lib/use-object-url';

type ObservationPanelProps = {
  result: Identification;
  /** The observation's photos (or their thumbnails), in the order sent. */
  photos: { blob: Blob | null; view: string | null }[];
  /** Adds a photo (of a view); absent where the observation cannot grow (the history). */
  onAddPhoto?: (view: PhotoView | null) => void;
};

const viewName = (view: string | null) => (view && isPhotoView(view) ? t.views.names[view] : null);

function PhotoThumb({ blob, alt }: { blob: Blob | null; alt: string }) {
  const url = useObjectUrl(blob);
  if (!url) return <div className="observation__thumb observation__thumb--empty" aria-hidden="true" />;
  return <img className="observation__thumb" src={url} alt={alt} />;
}

/** The observation's photos, each with its own top species; which photo next, and a button to add it. */
export function ObservationPanel({ result, photos, onAddPhoto }: ObservationPanelProps) {
  const tops = result.photos ?? [];
  const ask = result.next_photo ?? null;
  const askedView = ask && isPhotoView(ask.view) ? ask.view : null;
  const canAdd = onAddPhoto !== undefined && photos.length < MAX_PHOTOS;
  return (
    <section className="card observation" aria-labelledby="observation-heading" data-testid="observation-panel">
      <h3 id="observation-heading">{photos.length > 1 ? t.observation.photosHeading(photos.length) : t.observation.morePhotosHeading}</h3>
      {/* One photo is shown above, as judged; several are listed here, each with its own answer. */}
      {photos.length > 1 ? (
      <ol className="observation__photos" data-testid="observation-photos">
        {photos.map((photo, index) => {
          const top = tops.find((entry) => entry.index === index)?.top;
          const name = viewName(photo.view);
          return (
            <li key={index} className="observation__photo" data-view={photo.view ?? ''} data-species={top?.species ?? ''}>
              <PhotoThumb blob={photo.blob} alt={t.observation.photoAlt(index, name)} />
              {top ? <span className="small">{t.observation.photoTop(top.common_names[0] ?? top.scientific_name)}</span> : null}
            </li>
          );
        })}
      </ol>
      ) : null}
      {result.prior?.applied ? <p className="muted small">{t.observation.priorUsed(result.prior.region, result.prior.month)}</p> : null}
      {ask ? (
        <div className="observation__next" data-testid="next-photo" data-view={ask.view}>
          <h4>{t.observation.nextPhotoHeading}</h4>
          <p>{ask.reason}</p>
          {canAdd && askedView ? (
            <button type="button" className="big-button big-button--primary" onClick={() => onAddPhoto(askedView)}>
              <Icon name="camera" size={24} />
              <span>{t.observation.addViewPhoto(t.views.names[askedView])}</span>
            </button>
          ) : null}
        </div>
      ) : null}
      {canAdd ? (
        <button type="button" className="button" onClick={() => onAddPhoto(null)}>
          {t.observation.addPhoto(photos.length + 1, MAX_PHOTOS)}
        </button>
      ) : onAddPhoto ? (
        <p className="muted small">{t.observation.full(MAX_PHOTOS)}</p>
      ) : null}
    </section>
  );
}
