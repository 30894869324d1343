/** The person's answer to "use roughly where you are?", kept on this phone (asked once). */
export type LocationChoice = 'allowed' | 'declined';

const KEY = 'mushroom-id.location-choice';

/** Decimal places kept of a latitude or longitude: whole degrees (about 111 km), rounded here before use. */
export const LOCATION_DECIMALS = 0;

export function readLocationChoice(): LocationChoice | null {
  try {
    const value = window.localStorage.getItem(KEY);
    return value === 'allowed' || value === 'declined' ? value : null;
  } catch {
    return null;
  }
}

export function writeLocationChoice(choice: LocationChoice): void {
  try {
    window.localStorage.setItem(KEY, choice);
  } catch {
    // Private mode without storage: the choice holds for this visit only.
  }
}

/** Halves away from zero, as the server's `observation.round_location`. */
export function roundDegrees(value: number, decimals = LOCATION_DECIMALS): number {
  const scale = 10 ** decimals;
  const rounded = Math.floor(Math.abs(value) * scale + 0.5) / scale;
  return rounded === 0 ? 0 : Math.sign(value) * rounded;
}

export type RoundedPosition = { lat: number; lon: number };

/** The phone's position, rounded at once: the exact one is never kept or sent. */
export function readRoundedPosition(timeoutMs = 15_000): Promise<RoundedPosition> {
  return new Promise((resolve, reject) => {
    const geolocation = typeof navigator !== 'undefined' ? navigator.geolocation : undefined;
    if (!geolocation) {
      reject(new Error('no geolocation in this browser'));
      return;
    }
    geolocation.getCurrentPosition(
      (position) => resolve({ lat: roundDegrees(position.coords.latitude), lon: roundDegrees(position.coords.longitude) }),
      (error) => reject(new Error(error.message || 'position unavailable')),
      // Coarse is all that is kept: no GPS fix needed, and an hour-old position is as good.
      { enableHighAccuracy: false, maximumAge: 3_600_000, timeout: timeoutMs },
    );
  });
}
