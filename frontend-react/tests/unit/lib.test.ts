import { describe, expect, it } from 'vitest';
import { parseEnv } from '@/config/env';
import { ApiError, apiErrorFromResponse, toApiError } from '@/lib/api-error';
import { fitWithin, preparePhoto } from '@/lib/downscale-image';

describe('parseEnv', () => {
  it('fills defaults: same-origin API, top 3, 1024 px JPEG at 0.85', () => {
    expect(parseEnv({})).toEqual({ apiBaseUrl: '', topK: 3, uploadMaxSide: 1024, uploadJpegQuality: 0.85, apiTimeoutMs: 8000 });
  });

  it('reads and coerces values, dropping a trailing slash', () => {
    expect(
      parseEnv({ VITE_API_BASE_URL: 'https://api.example.org/', VITE_TOP_K: '5', VITE_UPLOAD_MAX_SIDE: '800' }),
    ).toMatchObject({ apiBaseUrl: 'https://api.example.org', topK: 5, uploadMaxSide: 800 });
  });

  it('refuses invalid values, naming each', () => {
    expect(() => parseEnv({ VITE_API_BASE_URL: 'not a url', VITE_TOP_K: '0' })).toThrow(/VITE_API_BASE_URL[\s\S]*VITE_TOP_K/);
  });
});

describe('fitWithin', () => {
  it.each([
    [4000, 3000, 1024, 1024, 768],
    [3000, 4000, 1024, 768, 1024],
    [640, 480, 1024, 640, 480],
    [1024, 1024, 1024, 1024, 1024],
    [5000, 3, 1024, 1024, 1],
  ])('%i x %i within %i -> %i x %i', (width, height, max, expectedWidth, expectedHeight) => {
    expect(fitWithin(width, height, max)).toEqual({ width: expectedWidth, height: expectedHeight });
  });
});

describe('preparePhoto', () => {
  it('sends the original when the browser cannot decode it, so the API can say why', async () => {
    const file = new File(['not an image'], 'notes.txt', { type: 'text/plain' });
    const prepared = await preparePhoto(file, 1024, 0.85);
    expect(prepared.blob).toBe(file);
    expect(prepared.fileName).toBe('notes.txt');
    expect(prepared.downscaled).toBe(false);
  });
});

describe('api errors', () => {
  it('maps statuses to kinds and keeps the API sentence', () => {
    const error = apiErrorFromResponse(new Response(null, { status: 415 }), { detail: 'Not an image.' });
    expect(error.kind).toBe('unsupported');
    expect(error.message).toBe('Not an image.');
    expect(error.title).toBe('Not a photo we can read');
  });

  it('uses its own sentence when the API gave none', () => {
    const error = apiErrorFromResponse(new Response(null, { status: 500 }), null);
    expect(error.kind).toBe('unknown');
    expect(error.message).toBe('Something went wrong. Please try again.');
  });

  it('treats a rejected fetch as a network failure and passes aborts through', () => {
    expect(toApiError(new TypeError('Failed to fetch')).isNetwork).toBe(true);
    const existing = new ApiError('tooLarge', 413, null);
    expect(toApiError(existing)).toBe(existing);
    expect(() => toApiError(new DOMException('aborted', 'AbortError'))).toThrow('aborted');
  });
});
