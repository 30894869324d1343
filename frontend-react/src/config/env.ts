import * as z from 'zod/mini';

const envSchema = z.object({
  /** Where the API lives; empty means the same origin that served the app (production and the dev proxy). */
  VITE_API_BASE_URL: z._default(z.union([z.literal(''), z.url()]), ''),
  /** How many species the answer lists. */
  VITE_TOP_K: z._default(z.coerce.number().check(z.int(), z.minimum(1), z.maximum(10)), 3),
  /** Longest side, in pixels, of the photo sent to the API. */
  VITE_UPLOAD_MAX_SIDE: z._default(z.coerce.number().check(z.int(), z.minimum(224), z.maximum(4096)), 1024),
  /** How long the API gets to answer before the model on this phone answers instead. */
  VITE_API_TIMEOUT_MS: z._default(z.coerce.number().check(z.int(), z.minimum(1000), z.maximum(120_000)), 8000),
  /** JPEG quality of the downscaled photo. */
  VITE_UPLOAD_JPEG_QUALITY: z._default(z.coerce.number().check(z.minimum(0.5), z.maximum(1)), 0.85),
});

export type Env = {
  apiBaseUrl: string;
  topK: number;
  uploadMaxSide: number;
  uploadJpegQuality: number;
  apiTimeoutMs: number;
};

/** Validates raw environment values; throws with every problem listed when one is wrong. */
export function parseEnv(raw: Record<string, unknown>): Env {
  const result = envSchema.safeParse(raw);
  if (!result.success) {
    throw new Error(`Invalid frontend environment: ${z.prettifyError(result.error)}`);
  }
  const values = result.data;
  return {
    apiBaseUrl: values.VITE_API_BASE_URL.replace(/\/+$/, ''),
    topK: values.VITE_TOP_K,
    uploadMaxSide: values.VITE_UPLOAD_MAX_SIDE,
    uploadJpegQuality: values.VITE_UPLOAD_JPEG_QUALITY,
    apiTimeoutMs: values.VITE_API_TIMEOUT_MS,
  };
}

/** The environment, read once at start-up. */
export const env: Env = parseEnv(import.meta.env);
