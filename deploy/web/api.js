// The public API under /api/v1 as the buyer's page calls it (docs/api.md): JSON in and
// out, the error envelope turned into an ApiError, and a 429, 502, 503 or 504 that
// carries Retry-After sent again after that wait, a few times at most (a purchase keeps
// its Idempotency-Key across them, so a retry never buys twice).

const API = '/api/v1';
/** Statuses whose Retry-After says when the same request may succeed. */
const RETRYABLE = new Set([429, 502, 503, 504]);
const MAX_RETRIES = 3;
const MAX_RETRY_WAIT_SECS = 10;

/** An answer the API refused (or no answer at all: status 0). */
export class ApiError extends Error {
  constructor(status, body) {
    const envelope = body && typeof body === 'object' ? body : {};
    super(typeof envelope.message === 'string' ? envelope.message : `The server answered ${status}.`);
    this.status = status;
    this.body = envelope;
    this.code = envelope.error_code || null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seconds to wait before sending a refused request again, or null when it says none. */
function retryAfter(response, body) {
  const header = Number.parseInt(response.headers.get('Retry-After') || '', 10);
  if (Number.isFinite(header) && header >= 0) return header;
  if (body && Number.isInteger(body.retry_after)) return body.retry_after;
  return null;
}

/**
 * Calls the API: `method` on `/api/v1` + `path`, with `token` when there is one.
 * Resolves with the parsed body (null when empty) or rejects with an ApiError;
 * `onRetry(text)` is told before a refused call is sent again.
 */
export async function call(method, path, body, { token, idempotencyKey, onRetry } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, {
        message: 'The server could not be reached. Check your connection and try again.',
      });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.ok) return data;
    const wait = retryAfter(response, data);
    if (RETRYABLE.has(response.status) && wait !== null && attempt < MAX_RETRIES) {
      const secs = Math.min(Math.max(wait, 1), MAX_RETRY_WAIT_SECS);
      const why = data && data.message ? `${data.message} ` : '';
      if (onRetry) onRetry(`${why}Trying again in ${secs} s.`);
      await sleep(secs * 1000 + Math.floor(Math.random() * 250));
      continue;
    }
    throw new ApiError(response.status, data);
  }
}

/** A fresh Idempotency-Key: 128 random bits in hex. */
export function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
