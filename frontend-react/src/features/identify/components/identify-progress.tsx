import { t } from '@/lib/i18n';

type IdentifyProgressProps = {
  stage: 'preparing' | 'uploading' | 'on-device';
  onCancel: () => void;
};

/** An indeterminate progress state announced to screen readers. */
export function IdentifyProgress({ stage, onCancel }: IdentifyProgressProps) {
  const label = { preparing: t.progress.preparing, uploading: t.progress.uploading, 'on-device': t.progress.onDevice }[stage];
  return (
    <section className="progress" aria-busy="true">
      <div className="progress__spinner" aria-hidden="true" />
      <p role="status" className="progress__label">
        {label}
      </p>
      <progress className="progress__bar" aria-label={label} />
      <button type="button" className="button" onClick={onCancel}>
        {t.progress.cancel}
      </button>
    </section>
  );
}
