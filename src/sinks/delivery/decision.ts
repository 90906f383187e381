import { isTransientStatus } from '../../core/errors.js';

/**
 * What to do with one response (Vector's split: each destination's `retry` file decides, the
 * core acts). Items are positions within the request as sent.
 */
export type Decision =
  /** Every event was accepted (or was already there). */
  | { kind: 'ok' }
  /** Nothing was accepted for a reason that may pass: resend the whole request after a backoff. */
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  /** Some items failed: resend only `retry`, dead-letter `dead`; the rest were accepted. */
  | { kind: 'partial'; retry: number[]; dead: DeadItem[]; reason: string; retryAfterMs?: number }
  /** The request was too large for the platform (413): halve it and send the halves. */
  | { kind: 'split'; reason: string }
  /** No retry can fix this (a wrong key, a missing resource): the shard fails, the offset stays. */
  | { kind: 'fatal'; reason: string };

export interface DeadItem {
  item: number;
  reason: string;
  /** The item's own status, where the platform gives one. */
  status?: number;
  /** A short, low-cardinality reason for metrics (`too_old`, `too_large`); defaults to `status_<status>` or `rejected`. */
  code?: string;
  /** The platform's own error, kept verbatim in the dead-letter record. */
  error?: unknown;
}

/** An HTTP status with the usual meaning: 2xx ok, 413 split, 408/429/5xx retry, 401/403 fatal, other 4xx fatal. */
export function decideStatus(status: number, what: string, retryAfterMs?: number): Decision {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  if (status === 413) return { kind: 'split', reason: `${what}: HTTP 413 (request too large)` };
  if (isTransientStatus(status)) return { kind: 'retry', reason: `${what}: HTTP ${status}`, retryAfterMs };
  if (status === 401 || status === 403) return { kind: 'fatal', reason: `${what}: HTTP ${status} (${status === 401 ? 'authentication failed: check the API key or token' : 'not allowed: check the key\'s permissions'})` };
  return { kind: 'fatal', reason: `${what}: HTTP ${status}` };
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ECONNABORTED']);

/**
 * A request that failed without an HTTP answer (refused, reset, timed out, DNS): retried, since
 * an unreachable host is retried before it fails the shard. SDK errors carrying an HTTP status
 * are decided by that status.
 */
export function decideTransportError(err: unknown, what: string): Decision {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string }; $metadata?: { httpStatusCode?: number }; statusCode?: number; status?: number };
  const status = e?.$metadata?.httpStatusCode ?? e?.statusCode ?? (typeof e?.status === 'number' ? e.status : undefined);
  if (typeof status === 'number' && status >= 400) return decideStatus(status, what);
  const code = e?.code ?? e?.cause?.code;
  const detail = code ?? e?.cause?.message ?? e?.message ?? String(err);
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return { kind: 'retry', reason: `${what}: timed out` };
  if (code && TRANSIENT_CODES.has(code)) return { kind: 'retry', reason: `${what}: ${detail}` };
  // fetch() reports network failures as TypeError('fetch failed') with the cause inside.
  if (e?.name === 'TypeError' && /fetch failed/.test(e.message ?? '')) return { kind: 'retry', reason: `${what}: ${detail}` };
  return { kind: 'retry', reason: `${what}: ${String(detail).split('\n')[0]}` };
}

/** `Retry-After` as seconds or an HTTP date, in milliseconds from `now`. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(parseFloat(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
