import { t } from '@/lib/i18n';

export type ApiErrorKind =
  | 'tooLarge'
  | 'unsupported'
  | 'unprocessable'
  | 'rateLimited'
  | 'unavailable'
  | 'notFound'
  | 'network'
  | 'unknown';

const KIND_BY_STATUS: Record<number, ApiErrorKind> = {
  404: 'notFound',
  413: 'tooLarge',
  415: 'unsupported',
  422: 'unprocessable',
  429: 'rateLimited',
  503: 'unavailable',
};

/** An API failure with a sentence a person understands (the API's own `detail` when it sent one). */
export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly status: number | null;
  readonly title: string;

  constructor(kind: ApiErrorKind, status: number | null, detail: string | null) {
    const texts = t.errors[kind];
    super(detail && detail.trim() ? detail : texts.fallback);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
    this.title = texts.title;
  }

  /** The network failed (offline, server unreachable): the request may be retried later. */
  get isNetwork(): boolean {
    return this.kind === 'network';
  }
}

function detailOf(body: unknown): string | null {
  if (body && typeof body === 'object' && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === 'string') return detail;
  }
  return null;
}

/** Builds an ApiError from an HTTP error response and its parsed body. */
export function apiErrorFromResponse(response: Response, body: unknown): ApiError {
  const kind = KIND_BY_STATUS[response.status] ?? 'unknown';
  // A 422 from FastAPI's own validation carries a list, not a sentence: fall back to ours then.
  return new ApiError(kind, response.status, detailOf(body));
}

/** Wraps anything thrown while calling the API: fetch rejects with a TypeError when the network is down. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof DOMException && error.name === 'AbortError') throw error;
  if (error instanceof TypeError) return new ApiError('network', null, null);
  return new ApiError('unknown', null, null);
}
