/* Mushroom ID service worker: the app shell, and everything on-device identification needs, offline.
 * Built into dist/sw.js by vite-plugins/service-worker-plugin.ts, which fills in the values below.
 *
 * - The shell (index.html, the hashed bundle files, icons) is precached at install.
 * - The model kit (GET /model/rules, the model file /model/file/<sha256>, LiteRT.js's WASM under
 *   /litert/) is cached as the page first uses it, in a cache named after the model's sha256.
 *   When the API serves a new model (a new sha256 in /model/rules), the new kit is cached next to
 *   the old one, and the old one is deleted once the new model file is stored.
 * - Every other API request (POST /predict and friends) goes to the network: an answer is never
 *   served from a cache.
 *
 * Matching ignores Vary: scripts and stylesheets are fetched `crossorigin` (with an Origin header),
 * the precache was filled without one, and a `Vary: Origin` answer would otherwise miss offline. */
const PRECACHE_URLS = self.__PRECACHE_URLS__;
const SHELL_CACHE = `mushroom-id-shell-${self.__CACHE_VERSION__}`;
const MODEL_CACHE_PREFIX = 'mushroom-id-model-';
const POINTER_CACHE = 'mushroom-id-pointer';
const POINTER_KEY = '/__current-model';
// How long the network gets before a cached answer is used (a server that is up but unreachable).
const NETWORK_TIMEOUT_MS = self.__NETWORK_TIMEOUT_MS__;
const MATCH = { ignoreVary: true };

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(SHELL_CACHE)
      .then((cache) => cache.addAll(PRECACHE_URLS))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((name) => name.startsWith('mushroom-id-shell-') && name !== SHELL_CACHE).map((name) => caches.delete(name)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

async function currentModel() {
  const hit = await (await caches.open(POINTER_CACHE)).match(POINTER_KEY);
  return hit ? hit.text() : null;
}

async function setCurrentModel(sha256) {
  await (await caches.open(POINTER_CACHE)).put(POINTER_KEY, new Response(sha256));
}

/** Network first (with a timeout); the copy of the current model's rules when that fails. */
async function modelRules(request) {
  try {
    const response = await withTimeout(fetch(request), NETWORK_TIMEOUT_MS);
    if (response.ok) {
      const sha256 = (await response.clone().json()).model.sha256;
      await (await caches.open(MODEL_CACHE_PREFIX + sha256)).put('/model/rules', response.clone());
      await setCurrentModel(sha256);
    }
    return response;
  } catch (error) {
    const sha256 = await currentModel();
    const hit = sha256 ? await (await caches.open(MODEL_CACHE_PREFIX + sha256)).match('/model/rules', MATCH) : undefined;
    if (hit) return hit;
    throw error;
  }
}

/** Keeps the new model's kit whole (LiteRT.js files from the old kit), then drops the old kits. */
async function retireOldModels(sha256) {
  const current = await caches.open(MODEL_CACHE_PREFIX + sha256);
  const old = (await caches.keys()).filter((name) => name.startsWith(MODEL_CACHE_PREFIX) && name !== MODEL_CACHE_PREFIX + sha256);
  for (const name of old) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      if (new URL(request.url).pathname.startsWith('/litert/') && !(await current.match(request, MATCH))) {
        const response = await cache.match(request, MATCH);
        if (response) await current.put(request, response);
      }
    }
    await caches.delete(name);
  }
}

/** The model file: its sha256 is in its address, so a cached copy is always right. */
async function modelFile(request, sha256) {
  const cache = await caches.open(MODEL_CACHE_PREFIX + sha256);
  const hit = await cache.match(request, MATCH);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) {
    await cache.put(request, response.clone());
    if ((await currentModel()) === sha256) await retireOldModels(sha256);
  }
  return response;
}

/** LiteRT.js's files: versioned addresses, kept with the current model. */
async function runtimeFile(request) {
  const hit = await caches.match(request, MATCH);
  if (hit) return hit;
  const response = await fetch(request);
  const sha256 = await currentModel();
  if (response.ok && sha256) await (await caches.open(MODEL_CACHE_PREFIX + sha256)).put(request, response.clone());
  return response;
}

async function shell() {
  const cache = await caches.open(SHELL_CACHE);
  return (await cache.match('/index.html', MATCH)) ?? cache.match('/', MATCH);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (request.mode === 'navigate') {
    // Network first so a new release shows at once; the cached shell when offline or too slow.
    if (url.pathname === '/' || url.pathname === '/index.html') {
      event.respondWith(withTimeout(fetch(request), NETWORK_TIMEOUT_MS).catch(shell));
    }
    return;
  }
  if (url.pathname === '/model/rules') {
    event.respondWith(modelRules(request));
    return;
  }
  const modelMatch = /^\/model\/file\/([0-9a-f]{64})$/.exec(url.pathname);
  if (modelMatch) {
    event.respondWith(modelFile(request, modelMatch[1]));
    return;
  }
  if (url.pathname.startsWith('/litert/')) {
    event.respondWith(runtimeFile(request));
    return;
  }
  if (PRECACHE_URLS.includes(url.pathname)) {
    // Shell files: hashed bundle names never change content, so the cache answers first.
    event.respondWith(caches.open(SHELL_CACHE).then((cache) => cache.match(url.pathname, MATCH)).then((hit) => hit ?? fetch(request)));
  }
});
