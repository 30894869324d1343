import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const frontendDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const repoRoot = resolve(frontendDir, '..');
export const distDir = join(frontendDir, 'dist');
export const resultsDir = join(frontendDir, 'test-results', 'e2e');
/** The development photos live next to the repository, never in it. */
export const sharedDataDir = resolve(process.env.E2E_SHARED_DATA ?? join(repoRoot, '..', 'shared', 'data'));

export function ensureResultsDir() {
  mkdirSync(resultsDir, { recursive: true });
  return resultsDir;
}

/** The first fly agaric photo of the shared data set, or null with the reason it is missing. */
export function findFlyAgaricPhoto() {
  const candidates = [
    join(sharedDataDir, 'nordic-field', 'amanita_muscaria'),
    join(sharedDataDir, 'mushroomvision', 'val', 'amanita_muscaria'),
  ];
  for (const folder of candidates) {
    if (!existsSync(folder)) continue;
    const photos = readdirSync(folder)
      .filter((name) => /\.(jpe?g|png|webp)$/i.test(name))
      .sort();
    if (photos.length > 0) return { photo: join(folder, photos[0]), reason: null };
  }
  return { photo: null, reason: `no fly agaric photo under ${sharedDataDir} (shared data absent)` };
}
