/**
 * The model kit: the rules file (GET /model/rules), the model file it names and LiteRT.js, loaded
 * into this page and kept by the service worker for offline use (see sw/service-worker.js).
 */
import type { RulesDocument } from '@/client/api-client';
import type { Identification } from '@/lib/identification';
import { newId } from '@/lib/local-db';
import { t } from '@/lib/i18n';
import { photoToModelInput } from './pixels';
import { LITERT_PATH, loadModel, type Accelerator, type LoadedModel } from './runtime';
import { judge, openSetScore, softmax } from './verdict';

export const MODEL_CACHE_PREFIX = 'mushroom-id-model-';

export type ModelKit = {
  rules: RulesDocument;
  model: LoadedModel;
  accelerator: Accelerator;
  /** Milliseconds from the first request to a compiled model. */
  loadMs: number;
};

export type OfflineReadiness = { stored: boolean; bytes: number };

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
  const rules = (await (await fetchOk('/model/rules')).json()) as RulesDocument;
  if (rules.schema_version !== 2) throw new Error(`rules file version ${String(rules.schema_version)} is not supported`);
  if (current?.sha256 === rules.model.sha256) return current.kit;
  const kit = (async () => {
    const bytes = new Uint8Array(await (await fetchOk(`/model/file/${rules.model.sha256}`)).arrayBuffer());
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
  for (const url of new Set(['/model/rules', `/model/file/${rules.model.sha256}`, ...runtime])) {
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
    has((path) => path === '/model/rules') &&
    has((path) => path === `/model/file/${rules.model.sha256}`) &&
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

/** Runs the model and the rules on one photo; also returns every label's probability and the time taken. */
export async function runOnDevice(kit: ModelKit, photo: Blob, topK: number): Promise<OnDeviceAnswer> {
  const started = performance.now();
  const { rules, model } = kit;
  const pixels = await photoToModelInput(photo, rules.model.input_width, rules.model.input_height);
  const output = await model.run(pixels);
  const openSet = rules.rules.open_set;
  const probabilities = softmax(output.logits, rules.model.temperature);
  const judgement = judge(rules, {
    probabilities,
    mushroomScore: output.mushroomScore,
    unknownScore: openSet ? openSetScore(output.logits, openSet.method) : null,
    topK,
  });
  const result: Identification = {
    request_id: `device-${newId()}`,
    ...judgement,
    disclaimer: t.disclaimer,
    mushroom_score: output.mushroomScore,
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
