import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'vite';

const require = createRequire(import.meta.url);
const packageDir = dirname(require.resolve('@litertjs/core/package.json'));

/** The installed LiteRT.js version: it names the folder, so a new version never meets an old cache. */
export const litertVersion: string = (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string })
  .version;

// LiteRT.js picks one at run time: relaxed SIMD where the browser has it, plain SIMD otherwise.
// The threaded and JSPI builds are never asked for (no `threads` or `jspi` option), so not shipped.
const FILES = [
  'litert_wasm_internal.js',
  'litert_wasm_internal.wasm',
  'litert_wasm_compat_internal.js',
  'litert_wasm_compat_internal.wasm',
];

/**
 * Serves LiteRT.js's WASM files from this app's own origin at `/litert/<version>/`: copied into
 * dist/ by the build (each `.wasm` with a `.wasm.gz` beside it, which the API sends to browsers
 * that accept gzip) and served from node_modules by the dev server.
 */
export function litertPlugin(): Plugin {
  const base = `litert/${litertVersion}`;
  return {
    name: 'mushroom-litert-wasm',
    generateBundle() {
      for (const file of FILES) {
        const source = readFileSync(join(packageDir, 'wasm', file));
        this.emitFile({ type: 'asset', fileName: `${base}/${file}`, source });
        if (file.endsWith('.wasm')) this.emitFile({ type: 'asset', fileName: `${base}/${file}.gz`, source: gzipSync(source, { level: 9 }) });
      }
    },
    configureServer(server) {
      server.middlewares.use((request, response, next) => {
        const file = request.url?.startsWith(`/${base}/`) ? request.url.slice(base.length + 2).split('?')[0] : null;
        if (!file || !FILES.includes(file)) {
          next();
          return;
        }
        response.setHeader('Content-Type', file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript');
        response.end(readFileSync(join(packageDir, 'wasm', file)));
      });
    },
  };
}
