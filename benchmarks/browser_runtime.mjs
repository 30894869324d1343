// Which web runtime runs the bundle's model in the phone's browser: LiteRT.js (the bundle's own
// .tflite) or ONNX Runtime Web (an ONNX conversion of it). One run, headless Debian Chromium,
// WASM with SIMD (no GPU here), the same random photos for both; prints one table of numbers.
//
//   node benchmarks/browser_runtime.mjs --tflite models/demo/model_int8.tflite \
//        --onnx /tmp/model_int8.onnx --ort-dist <onnxruntime-web>/dist [--runs 30]
//
// The ONNX file comes from `python -m tf2onnx.convert --tflite <tflite> --output <onnx>`;
// onnxruntime-web is unpacked from `npm pack onnxruntime-web` (it is not a dependency of the app).
import { createServer } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const frontend = join(root, 'frontend-react');
const require = createRequire(join(frontend, 'package.json'));
const { chromium } = require('playwright-core');

const { values } = parseArgs({
  options: {
    tflite: { type: 'string', default: join(root, 'models/demo/model_int8.tflite') },
    onnx: { type: 'string' },
    'ort-dist': { type: 'string' },
    runs: { type: 'string', default: '30' },
  },
});
if (!values.onnx || !values['ort-dist']) {
  console.error('--onnx and --ort-dist are required (see the header of this file)');
  process.exit(2);
}
const runs = Number(values.runs);
const litertDir = join(dirname(require.resolve('@litertjs/core/package.json')));
const files = {
  '/model.tflite': values.tflite,
  '/model.onnx': values.onnx,
  '/litert/index.js': join(litertDir, 'dist/index.js'),
  '/litert/wasm-utils.js': join(dirname(require.resolve('@litertjs/wasm-utils/package.json')), 'dist/index.js'),
  '/litert/wasm/litert_wasm_internal.js': join(litertDir, 'wasm/litert_wasm_internal.js'),
  '/litert/wasm/litert_wasm_internal.wasm': join(litertDir, 'wasm/litert_wasm_internal.wasm'),
  '/litert/wasm/litert_wasm_compat_internal.js': join(litertDir, 'wasm/litert_wasm_compat_internal.js'),
  '/litert/wasm/litert_wasm_compat_internal.wasm': join(litertDir, 'wasm/litert_wasm_compat_internal.wasm'),
  '/ort/ort.wasm.min.mjs': join(values['ort-dist'], 'ort.wasm.min.mjs'),
  '/ort/ort-wasm-simd-threaded.wasm': join(values['ort-dist'], 'ort-wasm-simd-threaded.wasm'),
  '/ort/ort-wasm-simd-threaded.mjs': join(values['ort-dist'], 'ort-wasm-simd-threaded.mjs'),
};
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const page = `<!doctype html><script type="importmap">{"imports":{"@litertjs/wasm-utils":"/litert/wasm-utils.js"}}</script><p>bench</p>`;

const server = createServer((request, response) => {
  const path = new URL(request.url, 'http://x').pathname;
  const file = files[path];
  if (path === '/') {
    response.writeHead(200, { 'content-type': 'text/html' }).end(page);
  } else if (file) {
    response.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(readFileSync(file));
  } else {
    response.writeHead(404).end();
  }
});
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });

/** Runs `body` (a function source) in a fresh page; returns its result. */
async function inFreshPage(body, arg) {
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(base);
  const result = await tab.evaluate(body, arg);
  await context.close();
  return result;
}

const litert = await inFreshPage(
  async ({ runs }) => {
    const t0 = performance.now();
    const lrt = await import('/litert/index.js');
    await lrt.loadLiteRt(`${location.origin}/litert/wasm/`);
    const t1 = performance.now();
    const model = await lrt.loadAndCompile(new Uint8Array(await (await fetch('/model.tflite')).arrayBuffer()), { accelerator: 'wasm' });
    const t2 = performance.now();
    const times = [];
    for (let i = 0; i < runs; i += 1) {
      const pixels = new Uint8Array(224 * 224 * 3).map(() => (Math.random() * 256) | 0);
      const start = performance.now();
      const input = new lrt.Tensor(pixels, [1, 224, 224, 3]);
      const outputs = await model.run(input);
      await outputs[0].data();
      times.push(performance.now() - start);
      input.delete();
      outputs.forEach((o) => o.delete());
    }
    return { runtimeMs: t1 - t0, compileMs: t2 - t1, times, relaxedSimd: await lrt.supportsFeature('relaxedSimd') };
  },
  { runs },
);

const ort = await inFreshPage(
  async ({ runs }) => {
    const t0 = performance.now();
    const ort = await import('/ort/ort.wasm.min.mjs');
    ort.env.wasm.wasmPaths = `${location.origin}/ort/`;
    ort.env.wasm.numThreads = 1;
    const t1 = performance.now();
    const session = await ort.InferenceSession.create(new Uint8Array(await (await fetch('/model.onnx')).arrayBuffer()), { executionProviders: ['wasm'] });
    const t2 = performance.now();
    const times = [];
    const name = session.inputNames[0];
    for (let i = 0; i < runs; i += 1) {
      const pixels = new Uint8Array(224 * 224 * 3).map(() => (Math.random() * 256) | 0);
      const start = performance.now();
      const out = await session.run({ [name]: new ort.Tensor('uint8', pixels, [1, 224, 224, 3]) });
      Object.values(out)[0].data;
      times.push(performance.now() - start);
    }
    return { runtimeMs: t1 - t0, compileMs: t2 - t1, times };
  },
  { runs },
);
await browser.close();
server.close();

const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const mb = (bytes) => (bytes / 1e6).toFixed(2);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (name, result, sizes) => ({
  runtime: name,
  'runtime init ms': result.runtimeMs.toFixed(0),
  'model compile ms': result.compileMs.toFixed(0),
  'first photo ms': result.times[0].toFixed(1),
  'warm median ms': median(result.times.slice(1)).toFixed(1),
  'model MB': mb(sizes.model),
  'runtime MB (gzip)': `${mb(sizes.runtime)} (${mb(sizes.runtimeGz)})`,
});
const table = [
  row(`LiteRT.js${litert.relaxedSimd ? ' (relaxed SIMD)' : ''}`, litert, {
    model: statSync(values.tflite).size,
    runtime: statSync(files[litert.relaxedSimd ? '/litert/wasm/litert_wasm_internal.wasm' : '/litert/wasm/litert_wasm_compat_internal.wasm']).size,
    runtimeGz: gz(files[litert.relaxedSimd ? '/litert/wasm/litert_wasm_internal.wasm' : '/litert/wasm/litert_wasm_compat_internal.wasm']),
  }),
  row('ONNX Runtime Web (SIMD, 1 thread)', ort, {
    model: statSync(values.onnx).size,
    runtime: statSync(files['/ort/ort-wasm-simd-threaded.wasm']).size,
    runtimeGz: gz(files['/ort/ort-wasm-simd-threaded.wasm']),
  }),
];
console.table(table);
console.log(JSON.stringify({ runs, table }));
