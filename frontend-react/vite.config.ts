/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { litertPlugin, litertVersion } from './vite-plugins/litert-plugin.ts';
import { serviceWorkerPlugin } from './vite-plugins/service-worker-plugin.ts';

// Routes the API serves; the dev server forwards them so the app talks to one origin as in production.
const API_ROUTES = ['/predict', '/explain', '/feedback', '/species', '/model', '/healthz', '/readyz'];
const devApiTarget = process.env.DEV_API_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  define: { __LITERT_VERSION__: JSON.stringify(litertVersion) },
  plugins: [
    react(),
    litertPlugin(),
    serviceWorkerPlugin({
      // The service worker's wait for the network before it answers from its caches.
      networkTimeoutMs: 4000,
      template: fileURLToPath(new URL('./sw/service-worker.js', import.meta.url)),
      publicShell: [
        '/index.html',
        '/manifest.webmanifest',
        '/favicon.svg',
        '/icons/icon-192.png',
        '/icons/icon-512.png',
        '/icons/icon-maskable-512.png',
      ],
    }),
  ],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  server: {
    proxy: Object.fromEntries(API_ROUTES.map((route) => [route, { target: devApiTarget, changeOrigin: true }])),
  },
  build: {
    target: 'es2022',
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./tests/unit/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}', 'tests/unit/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
