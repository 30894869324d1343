import { useId, type ChangeEvent } from 'react';
import { Icon } from '@/components/ui/icon';
import { t } from '@/lib/i18n';

type PhotoPickerProps = {
  onPhoto: (file: File) => void;
  disabled?: boolean;
  /** Another photo of an observation: its own heading and hint (the view asked for). */
  heading?: string;
  hint?: string;
};

/** Two big buttons: the camera (rear-facing on phones) and the photo gallery. */
export function PhotoPicker({ onPhoto, disabled = false, heading = t.picker.heading, hint = t.picker.hint }: PhotoPickerProps) {
  const cameraId = useId();
  const galleryId = useId();
  const hintId = useId();

  const handleChange = (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    // Clearing the value lets the same photo be chosen twice in a row.
    event.target.value = '';
    if (file) onPhoto(file);
  };

  return (
    <section className="picker" aria-labelledby={`${hintId}-heading`}>
      <h2 id={`${hintId}-heading`} className="picker__heading">
        {heading}
      </h2>
      <p id={hintId} className="picker__hint">
        {hint}
      </p>
      <div className="picker__buttons">
        <input
          id={cameraId}
          className="visually-hidden file-input"
          type="file"
          accept="image/*"
          capture="environment"
          onChange={handleChange}
          disabled={disabled}
          aria-describedby={hintId}
        />
        <label htmlFor={cameraId} className="big-button big-button--primary" aria-disabled={disabled}>
          <Icon name="camera" size={32} />
          <span>{t.picker.takePhoto}</span>
        </label>
        <input
          id={galleryId}
          className="visually-hidden file-input"
          type="file"
          accept="image/*"
          onChange={handleChange}
          disabled={disabled}
          aria-describedby={hintId}
        />
        <label htmlFor={galleryId} className="big-button" aria-disabled={disabled}>
          <Icon name="gallery" size={32} />
          <span>{t.picker.chooseFromGallery}</span>
        </label>
      </div>
    </section>
  );
}
