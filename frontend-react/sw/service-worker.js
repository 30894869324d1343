/* Mushroom ID service worker: caches the app shell so the app opens offline.
 * Built into dist/sw.js by vite-plugins/service-worker-plugin.ts, which fills in the two values below.
 * API requests (POST /predict and friends) always go to the network: an answer is never served from cache. */
const PRECACHE_URLS = self.__PRECACHE_URLS__;
const CACHE_NAME = `mushroom-id-shell-${self.__CACHE_VERSION__}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE_NAME)
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
          names.filter((name) => name.startsWith('mushroom-id-shell-') && name !== CACHE_NAME).map((name) => caches.delete(name)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (request.mode === 'navigate') {
    // Network first so a new release shows at once; the cached shell when offline.
    event.respondWith(
      fetch(request).catch(() =>
        caches.open(CACHE_NAME).then((cache) => cache.match('/index.html').then((hit) => hit ?? cache.match('/'))),
      ),
    );
    return;
  }

  if (PRECACHE_URLS.includes(url.pathname)) {
    // Shell files: hashed bundle names never change content, so the cache answers first.
    event.respondWith(caches.match(request).then((hit) => hit ?? fetch(request)));
  }
});
