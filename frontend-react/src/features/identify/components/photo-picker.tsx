import { useId, type ChangeEvent } from 'react';
import { Icon, type IconName } from '@/components/ui/icon';
import { t } from '@/lib/i18n';

type PhotoPickerProps = {
  onPhoto: (file: File) => void;
  disabled?: boolean;
  /** Another photo of an observation: its own heading and hint (the view asked for). */
  heading?: string;
  hint?: string;
};

type PickerButtonProps = {
  icon: IconName;
  label: string;
  /** The camera button: the primary style, and `capture` opens the camera rather than the gallery. */
  primary?: boolean;
  capture?: 'environment';
  onChange: (event: ChangeEvent<HTMLInputElement>) => void;
  disabled: boolean;
  hintId: string;
};

/** A hidden image file input with the big button (its label) that opens it. */
function PickerButton({ icon, label, primary = false, capture, onChange, disabled, hintId }: PickerButtonProps) {
  const id = useId();
  return (
    <>
      <input
        id={id}
        className="visually-hidden file-input"
        type="file"
        accept="image/*"
        capture={capture}
        onChange={onChange}
        disabled={disabled}
        aria-describedby={hintId}
      />
      <label htmlFor={id} className={primary ? 'big-button big-button--primary' : 'big-button'} aria-disabled={disabled}>
        <Icon name={icon} size={32} />
        <span>{label}</span>
      </label>
    </>
  );
}

/** Two big buttons: the camera (rear-facing on phones) and the photo gallery. */
export function PhotoPicker({ onPhoto, disabled = false, heading = t.picker.heading, hint = t.picker.hint }: PhotoPickerProps) {
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
        <PickerButton
          icon="camera"
          label={t.picker.takePhoto}
          primary
          capture="environment"
          onChange={handleChange}
          disabled={disabled}
          hintId={hintId}
        />
        <PickerButton icon="gallery" label={t.picker.chooseFromGallery} onChange={handleChange} disabled={disabled} hintId={hintId} />
      </div>
    </section>
  );
}
