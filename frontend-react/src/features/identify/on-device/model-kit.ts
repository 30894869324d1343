/**
 * The model kit: the rules file (GET /model/rules), the model file it names and LiteRT.js, loaded
 * into this page and kept by the service worker for offline use (see sw/service-worker.js).
 * Both files come through the typed API client (the contract's paths, the configured base URL);
 * the rules file is validated (`rules.ts`) before anything uses it.
 */
import { apiClient, type paths } from '@/client/api-client';
import type { Identification } from '@/lib/identification';
import { newId } from '@/lib/local-db';
import { t } from '@/lib/i18n';
import { photoToModelInput } from './pixels';
import { parseRules, type InferenceView, type RulesDocument } from './rules';
import { LITERT_PATH, loadModel, type Accelerator, type LoadedModel } from './runtime';
import { averageRows, judge, openSetScore, softmax } from './verdict';

export const MODEL_CACHE_PREFIX = 'mushroom-id-model-';

export type ModelKit = {
  rules: RulesDocument;
  model: LoadedModel;
  accelerator: Accelerator;
  /** Milliseconds from the first request to a compiled model. */
  loadMs: number;
};

export type OfflineReadiness = { stored: boolean; bytes: number };

/** The contract's paths of the kit's two files (the service worker caches them by these paths). */
const RULES_PATH = '/model/rules' satisfies keyof paths;
const MODEL_FILE_PATH = '/model/file/{sha256}' satisfies keyof paths;
const modelFilePath = (sha256: string): string => MODEL_FILE_PATH.replace('{sha256}', sha256);

/** GET /model/rules, validated. */
async function fetchRules(): Promise<RulesDocument> {
  const { data, response } = await apiClient.GET(RULES_PATH, { parseAs: 'json' });
  if (!response.ok || data === undefined) throw new Error(`${RULES_PATH} answered ${response.status}`);
  return parseRules(data);
}

/** GET /model/file/{sha256}: the model's bytes. */
async function fetchModelFile(sha256: string): Promise<Uint8Array<ArrayBuffer>> {
  const { data, response } = await apiClient.GET(MODEL_FILE_PATH, { params: { path: { sha256 } }, parseAs: 'arrayBuffer' });
  if (!response.ok || data === undefined) throw new Error(`${modelFilePath(sha256)} answered ${response.status}`);
  return new Uint8Array(data);
}

async function fetchOk(url: string): Promise<Response> {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response;
}

let current: { sha256: string; kit: Promise<ModelKit> } | null = null;

/**
 * The kit of the model the API serves now (the service worker's copy offline); loads it when the
 * rules name a model this page has not loaded yet, so a new champion replaces the old one.
 */
export async function loadModelKit(): Promise<ModelKit> {
  const started = performance.now();
  const rules = await fetchRules();
  if (current?.sha256 === rules.model.sha256) return current.kit;
  const kit = (async () => {
    const bytes = await fetchModelFile(rules.model.sha256);
    const model = await loadModel(rules, bytes);
    const loaded = { rules, model, accelerator: model.accelerator, loadMs: performance.now() - started };
    exposeForDiagnostics(loaded);
    return loaded;
  })();
  current = { sha256: rules.model.sha256, kit };
  kit.catch(() => {
    if (current?.kit === kit) current = null;
  });
  return kit;
}

/** The kit already loaded in this page, if any (no request). */
export function loadedModelKit(): Promise<ModelKit> | null {
  return current?.kit ?? null;
}

/** Resolves once a service worker controls this page (false when there is none, or it takes too long). */
async function controlled(timeoutMs = 15_000): Promise<boolean> {
  const container = typeof navigator !== 'undefined' ? navigator.serviceWorker : undefined;
  if (!container) return false;
  if (container.controller) return true;
  return new Promise((resolve) => {
    const timer = window.setTimeout(() => resolve(false), timeoutMs);
    container.addEventListener(
      'controllerchange',
      () => {
        window.clearTimeout(timer);
        resolve(true);
      },
      { once: true },
    );
  });
}

/**
 * On the first visit the kit loads before the service worker controls the page, so the worker
 * never saw it: ask for it again through the worker (the browser's HTTP cache answers quickly).
 */
export async function storeForOffline(rules: RulesDocument): Promise<void> {
  if (!(await controlled())) return;
  const runtime = performance
    .getEntriesByType('resource')
    .map((entry) => new URL(entry.name).pathname)
    .filter((path) => path.startsWith(LITERT_PATH));
  await fetchRules();
  await fetchModelFile(rules.model.sha256);
  for (const url of new Set(runtime)) {
    await (await fetchOk(url)).arrayBuffer();
  }
}

function sizeOf(response: Response): Promise<number> {
  const length = Number(response.headers.get('content-length'));
  return Number.isFinite(length) && length > 0 ? Promise.resolve(length) : response.blob().then((blob) => blob.size);
}

/** Whether the service worker holds the whole kit (rules, model, LiteRT.js), and its download size. */
export async function offlineReadiness(rules: RulesDocument): Promise<OfflineReadiness> {
  if (typeof caches === 'undefined' || !(await caches.has(MODEL_CACHE_PREFIX + rules.model.sha256))) {
    return { stored: false, bytes: 0 };
  }
  const cache = await caches.open(MODEL_CACHE_PREFIX + rules.model.sha256);
  const paths = (await cache.keys()).map((request) => new URL(request.url).pathname);
  const has = (test: (path: string) => boolean) => paths.some(test);
  const stored =
    has((path) => path === RULES_PATH) &&
    has((path) => path === modelFilePath(rules.model.sha256)) &&
    has((path) => path.startsWith(LITERT_PATH) && path.endsWith('.js')) &&
    has((path) => path.startsWith(LITERT_PATH) && path.endsWith('.wasm'));
  let bytes = 0;
  for (const request of await cache.keys()) {
    const response = await cache.match(request, { ignoreVary: true });
    if (response) bytes += await sizeOf(response);
  }
  return { stored, bytes };
}

export type OnDeviceAnswer = { result: Identification; probabilities: number[]; milliseconds: number };

/** The model's input as a test-time view shows it (as `runtime.view_pixels`): the mirror flips each row. */
export function viewPixels(pixels: Uint8Array<ArrayBuffer>, width: number, view: InferenceView): Uint8Array<ArrayBuffer> {
  if (view === 'original') return pixels;
  const mirrored = new Uint8Array(pixels.length);
  const row = width * 3;
  for (let start = 0; start < pixels.length; start += row) {
    for (let x = 0; x < width; x += 1) mirrored.set(pixels.subarray(start + (width - 1 - x) * 3, start + (width - x) * 3), start + x * 3);
  }
  return mirrored;
}

/**
 * Runs the model on each of the rules' test-time views and the rules on their average (as the
 * runtime's `run_views`): each view calibrated with the variant's temperature, then the
 * probabilities, logits and scores averaged view after view.
 */
/** One photo through the model in every test-time view (as the classifier's `predict_views`). */
export type PhotoViewsOutput = { probabilities: number[]; logits: number[]; mushroomScore: number | null; viewProbabilities: number[][] };

/** Runs the model on each of the rules' test-time views of one photo; averages them (the observation runner uses it too). */
export async function runPhotoViews(kit: ModelKit, photo: Blob): Promise<PhotoViewsOutput> {
  const { rules, model } = kit;
  const { input_width: width, input_height: height, test_time_views: views, temperature } = rules.model;
  const pixels = await photoToModelInput(photo, width, height);
  const outputs = [];
  for (const view of views) outputs.push(await model.run(viewPixels(pixels, width, view)));
  const viewProbabilities = outputs.map((output) => softmax(output.logits, temperature));
  const probabilities = averageRows(viewProbabilities);
  const logits = averageRows(outputs.map((output) => output.logits));
  const scores = outputs.map((output) => output.mushroomScore);
  const mushroomScore = scores.every((score): score is number => score !== null) ? averageRows(scores.map((score) => [score]))[0]! : null;
  return { probabilities, logits, mushroomScore, viewProbabilities };
}

export async function runOnDevice(kit: ModelKit, photo: Blob, topK: number): Promise<OnDeviceAnswer> {
  const started = performance.now();
  const { rules } = kit;
  const { probabilities, logits, mushroomScore, viewProbabilities } = await runPhotoViews(kit, photo);
  const openSet = rules.rules.open_set;
  const judgement = judge(rules, {
    probabilities,
    mushroomScore,
    unknownScore: openSet ? openSetScore(logits, openSet.method) : null,
    topK,
    viewProbabilities,
  });
  const result: Identification = {
    request_id: `device-${newId()}`,
    verdict: judgement.verdict,
    message: judgement.message,
    predictions: judgement.predictions,
    genera: judgement.genera,
    lookalikes: judgement.lookalikes,
    possibly_unknown_species: judgement.possibly_unknown_species,
    caution: judgement.caution,
    unknown_species_message: judgement.unknown_species_message,
    disclaimer: t.disclaimer,
    mushroom_score: mushroomScore,
    model: { name: rules.model.name, version: rules.model.version },
    source: 'device',
  };
  return { result, probabilities, milliseconds: performance.now() - started };
}

/** Identifies one photo with the model on this phone and the same rules as the server. */
export async function identifyOnDevice(kit: ModelKit, photo: Blob, topK: number): Promise<Identification> {
  return (await runOnDevice(kit, photo, topK)).result;
}

declare global {
  interface Window {
    /** For parity checks against the server and for debugging: the loaded model kit. */
    mushroomIdOnDevice?: { rules: RulesDocument; accelerator: Accelerator; loadMs: number; run: (photo: Blob, topK: number) => Promise<OnDeviceAnswer> };
  }
}

/** Makes the loaded kit reachable from the console (and the parity test). */
export function exposeForDiagnostics(kit: ModelKit): void {
  window.mushroomIdOnDevice = {
    rules: kit.rules,
    accelerator: kit.accelerator,
    loadMs: kit.loadMs,
    run: (photo, topK) => runOnDevice(kit, photo, topK),
  };
}
