import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Plugin } from 'vite';

/**
 * Emits `sw.js` from a hand-written template, filling in the list of files that make the app shell
 * (the hashed bundle files are only known at build time), a cache version derived from them and the
 * network timeout after which cached answers are used.
 */
export function serviceWorkerPlugin(options: { template: string; publicShell: string[]; networkTimeoutMs: number }): Plugin {
  return {
    name: 'mushroom-service-worker',
    apply: 'build',
    generateBundle(_outputOptions, bundle) {
      const bundled = Object.keys(bundle)
        .filter((file) => /\.(js|css|svg|png|webmanifest)$/.test(file) && !file.startsWith('litert/'))
        .map((file) => `/${file}`);
      const urls = [...new Set(['/', ...options.publicShell, ...bundled])].sort();
      const version = createHash('sha256').update(urls.join('\n')).digest('hex').slice(0, 12);
      const source = readFileSync(options.template, 'utf8')
        .replace('self.__PRECACHE_URLS__', JSON.stringify(urls))
        .replace('self.__CACHE_VERSION__', JSON.stringify(version))
        .replace('self.__NETWORK_TIMEOUT_MS__', String(options.networkTimeoutMs));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}
