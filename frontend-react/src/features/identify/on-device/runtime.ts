/**
 * The bundle's TFLite model in the browser with LiteRT.js: WebGPU when the browser has it and
 * the model compiles there, WASM (SIMD) otherwise. The WASM files come from this app's own origin
 * (`/litert/<version>/`, copied there by the build), never from a CDN.
 */
import type { RulesDocument } from './rules';

declare const __LITERT_VERSION__: string;

/** Where the build puts LiteRT.js's WASM files (the version in the path: a new release, a new URL). */
export const LITERT_PATH = `/litert/${__LITERT_VERSION__}/`;

export type Accelerator = 'webgpu' | 'wasm';

export type ModelOutput = { logits: number[]; mushroomScore: number | null };

export type LoadedModel = {
  sha256: string;
  accelerator: Accelerator;
  run: (pixels: Uint8Array<ArrayBuffer>) => Promise<ModelOutput>;
};

type LiteRt = typeof import('@litertjs/core');

let liteRtPromise: Promise<LiteRt> | null = null;

/**
 * Where the WASM runtime's own log lines go. Emscripten writes TFLite's stderr (17 `INFO: ...`
 * lines per page load: delegates created, ops resolved) with `console.error`; only real errors
 * belong there. LiteRT.js's loader passes `self.Module` to the WASM module factory, and the
 * factory takes `print`/`printErr` from it.
 */
export function routeRuntimeLog(line: string): void {
  if (/^\s*(INFO|VERBOSE|DEBUG)\b|^\s*[IV]\d{4} /.test(line)) console.debug(line);
  else if (/^\s*(WARNING|WARN)\b|^\s*W\d{4} /.test(line)) console.warn(line);
  else console.error(line);
}

type ModuleOptions = { print: (line: string) => void; printErr: (line: string) => void };

/** Loads the LiteRT.js module and its WASM once per page. */
function loadRuntime(): Promise<LiteRt> {
  liteRtPromise ??= import('@litertjs/core').then(async (liteRt) => {
    (self as unknown as { Module?: ModuleOptions }).Module = { print: (line) => console.debug(line), printErr: routeRuntimeLog };
    await liteRt.loadLiteRt(new URL(LITERT_PATH, window.location.origin).href);
    return liteRt;
  });
  liteRtPromise.catch(() => {
    liteRtPromise = null;
  });
  return liteRtPromise;
}

async function webGpuAvailable(liteRt: LiteRt): Promise<boolean> {
  if (!liteRt.isWebGPUSupported()) return false;
  try {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter: () => Promise<unknown> } }).gpu;
    return Boolean(await gpu?.requestAdapter());
  } catch {
    return false;
  }
}

/** The output tensors' positions: logits [1, labels] and, when the model has one, the score [1, 1]. */
function outputPositions(shapes: number[][], labels: number, hasScore: boolean): { logits: number; score: number | null } {
  const key = (shape: number[]) => shape.join('x');
  const logits = shapes.findIndex((shape) => key(shape) === `1x${labels}`);
  if (logits < 0) throw new Error(`the model has no [1, ${labels}] logits output (outputs: ${shapes.map(key).join(', ')})`);
  if (!hasScore) return { logits, score: null };
  const score = shapes.findIndex((shape, index) => index !== logits && key(shape) === '1x1');
  if (score < 0) throw new Error('the rules name a mushroom score but the model has no [1, 1] output');
  return { logits, score };
}

/** Compiles the model (bytes of `rules.model`) and checks its input and outputs against the rules. */
export async function loadModel(rules: Pick<RulesDocument, 'model' | 'labels'>, modelBytes: Uint8Array<ArrayBuffer>): Promise<LoadedModel> {
  const liteRt = await loadRuntime();
  const { input_height: height, input_width: width } = rules.model;
  let accelerator: Accelerator = (await webGpuAvailable(liteRt)) ? 'webgpu' : 'wasm';
  let compiled;
  try {
    compiled = await liteRt.loadAndCompile(modelBytes, { accelerator });
  } catch (error) {
    if (accelerator === 'wasm') throw error;
    // Some int8 kernels have no WebGPU version: the CPU runs the whole model then.
    accelerator = 'wasm';
    compiled = await liteRt.loadAndCompile(modelBytes, { accelerator });
  }
  const inputs = compiled.getInputDetails();
  const expected = `1x${height}x${width}x3`;
  if (inputs.length !== 1 || Array.from(inputs[0]!.shape).join('x') !== expected || inputs[0]!.dtype !== 'uint8') {
    throw new Error(`the model does not take uint8 [${expected.replaceAll('x', ', ')}]`);
  }
  const shapes = compiled.getOutputDetails().map((detail) => Array.from(detail.shape));
  const positions = outputPositions(shapes, rules.labels.length, rules.model.mushroom_score_output);
  const model = compiled;

  const run = async (pixels: Uint8Array<ArrayBuffer>): Promise<ModelOutput> => {
    const input = new liteRt.Tensor(pixels, [1, height, width, 3]);
    let outputs: import('@litertjs/core').Tensor[] = [];
    try {
      outputs = await model.run(input);
      const logits = Array.from(await outputs[positions.logits]!.data(), Number);
      const raw = positions.score === null ? null : Number((await outputs[positions.score]!.data())[0]);
      if (!logits.every(Number.isFinite) || (raw !== null && !Number.isFinite(raw))) {
        throw new Error('the model returned numbers that are not finite');
      }
      return { logits, mushroomScore: raw === null ? null : Math.min(Math.max(raw, 0), 1) };
    } finally {
      input.delete();
      for (const output of outputs) output.delete();
    }
  };
  return { sha256: rules.model.sha256, accelerator, run };
}
