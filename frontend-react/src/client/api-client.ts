import createClient from 'openapi-fetch';
import { env } from '@/config/env';
import type { paths } from './schema';

export type * from './schema';

function resolveBaseUrl(): string {
  if (env.apiBaseUrl) return env.apiBaseUrl;
  return typeof window === 'undefined' ? 'http://localhost' : window.location.origin;
}

/** The typed API client; paths and bodies come from the generated OpenAPI types. */
export const apiClient = createClient<paths>({
  baseUrl: resolveBaseUrl(),
  // Look fetch up on each call (not once at start-up) so interceptors installed later (MSW in tests) apply.
  fetch: (request) => globalThis.fetch(request),
});

/** Sends a photo as the multipart field `file`, the way every upload route expects it. */
export function photoFormData(photo: Blob, fileName = 'photo.jpg'): FormData {
  const form = new FormData();
  form.append('file', photo, fileName);
  return form;
}
