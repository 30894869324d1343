import { useCallback, useEffect, useState } from 'react';
import { readLocationChoice, readRoundedPosition, writeLocationChoice, type LocationChoice, type RoundedPosition } from '../api/location-choice';

export type LocationState =
  | { status: 'off' }
  | { status: 'reading' }
  | { status: 'ready'; position: RoundedPosition }
  | { status: 'unavailable' };

/**
 * The location opt-in: the remembered choice (null until the person answers), and, when allowed,
 * the phone's position rounded to whole degrees. Declining is remembered: the question is not
 * asked again; only the setting turns it back on.
 */
export function useLocation() {
  const [choice, setChoiceState] = useState<LocationChoice | null>(() => readLocationChoice());
  const [read, setRead] = useState<LocationState | null>(null);

  useEffect(() => {
    if (choice !== 'allowed' || read !== null) return;
    let cancelled = false;
    readRoundedPosition().then(
      (position) => {
        if (!cancelled) setRead({ status: 'ready', position });
      },
      () => {
        if (!cancelled) setRead({ status: 'unavailable' });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [choice, read]);

  const state: LocationState = choice !== 'allowed' ? { status: 'off' } : (read ?? { status: 'reading' });

  const setChoice = useCallback((next: LocationChoice) => {
    writeLocationChoice(next);
    setChoiceState(next);
  }, []);

  return { choice, state, setChoice };
}
