import { useId } from 'react';
import { t } from '@/lib/i18n';
import type { LocationChoice } from '../api/location-choice';
import type { LocationState } from '../hooks/use-location';

type LocationSettingProps = {
  choice: LocationChoice | null;
  state: LocationState;
  onChange: (choice: LocationChoice) => void;
};

/** The setting behind the one-time question: the only way back after "No, thanks". */
export function LocationSetting({ choice, state, onChange }: LocationSettingProps) {
  const id = useId();
  return (
    <details className="settings">
      <summary>{t.location.settingsHeading}</summary>
      <div className="settings__row">
        <input
          id={id}
          type="checkbox"
          checked={choice === 'allowed'}
          onChange={(event) => onChange(event.target.checked ? 'allowed' : 'declined')}
        />
        <label htmlFor={id}>{t.location.setting}</label>
      </div>
      {state.status === 'ready' ? <p className="muted small">{t.location.using(state.position.lat, state.position.lon)}</p> : null}
      {state.status === 'unavailable' ? <p className="muted small">{t.location.unavailable}</p> : null}
    </details>
  );
}
