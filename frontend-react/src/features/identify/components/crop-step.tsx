import { useId, useState } from 'react';
import { WHOLE_PHOTO, isWholePhoto, type CropRect } from '@/lib/downscale-image';
import { PHOTO_VIEWS, isPhotoView, type PhotoView } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { CropBox } from './crop-box';

type CropStepProps = {
  photo: Blob;
  /** The view asked for ("which photo next"), preselected; the person can change it. */
  view: PhotoView | null;
  onUse: (crop: CropRect, view: PhotoView | null) => void;
  onCancel: () => void;
};

/** Frame the new photo (the whole photo unless the box is changed) and say what it shows. */
export function CropStep({ photo, view: askedView, onUse, onCancel }: CropStepProps) {
  const [crop, setCrop] = useState<CropRect>(WHOLE_PHOTO);
  const [view, setView] = useState<PhotoView | null>(askedView);
  const viewId = useId();
  return (
    <section className="card crop-step" aria-labelledby="crop-heading" data-testid="crop-step">
      <h2 id="crop-heading">{t.crop.heading}</h2>
      <p className="muted">{t.crop.hint}</p>
      <CropBox photo={photo} value={crop} onChange={setCrop} />
      <label htmlFor={viewId} className="crop-step__view">
        {t.views.label}
      </label>
      <select id={viewId} value={view ?? ''} onChange={(event) => setView(isPhotoView(event.target.value) ? event.target.value : null)}>
        <option value="">{t.views.notSaid}</option>
        {PHOTO_VIEWS.map((option) => (
          <option key={option} value={option}>
            {t.views.names[option]}
          </option>
        ))}
      </select>
      <div className="crop-step__buttons">
        <button type="button" className="big-button big-button--primary" onClick={() => onUse(crop, view)}>
          {t.crop.use}
        </button>
        <button type="button" className="button" onClick={() => setCrop(WHOLE_PHOTO)} disabled={isWholePhoto(crop)}>
          {t.crop.wholePhoto}
        </button>
        <button type="button" className="button" onClick={onCancel}>
          {t.crop.cancel}
        </button>
      </div>
    </section>
  );
}
