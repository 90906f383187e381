import { decideStatus, parseRetryAfter, type DeadItem, type Decision } from '../delivery/decision.js';
import { isTransientStatus } from '../../core/errors.js';

interface BulkItemResult { status?: number; error?: unknown }
export interface BulkResponse { errors?: boolean; items?: Record<string, BulkItemResult>[] }

/**
 * Decides per item: 2xx delivered; 409 on create = delivered by an earlier attempt (the `_id` is
 * the row key); 429/5xx retried alone; 401/403 stop the shard; any other status is dead-lettered.
 */
export function decideBulkResponse(body: BulkResponse, count: number, opType: 'create' | 'index'): Decision {
  const items = body.items;
  if (!Array.isArray(items) || items.length !== count) {
    return { kind: 'fatal', reason: `_bulk answered ${Array.isArray(items) ? items.length : 'no'} items for ${count} documents` };
  }
  if (body.errors === false) return { kind: 'ok' };
  const retry: number[] = [];
  const dead: DeadItem[] = [];
  for (let i = 0; i < count; i++) {
    const result = Object.values(items[i]!)[0] ?? {};
    const status = result.status ?? 500;
    if (status >= 200 && status < 300) continue;
    if (status === 409 && opType === 'create') continue;
    if (status === 429 || status >= 500) retry.push(i);
    else if (status === 401 || status === 403) return { kind: 'fatal', reason: `document rejected with HTTP ${status}: ${describeError(result.error)}` };
    else dead.push({ item: i, status, reason: describeError(result.error), error: result.error ?? null });
  }
  if (retry.length === 0 && dead.length === 0) return { kind: 'ok' };
  return { kind: 'partial', retry, dead, reason: `${retry.length} documents answered 429/5xx` };
}

/** Whole-request failures: throttling, server errors, timeouts and broken connections retry. */
export function isRetryableRequestError(err: unknown): boolean {
  const e = err as { name?: string; meta?: { statusCode?: number }; statusCode?: number };
  const status = e.meta?.statusCode ?? e.statusCode;
  if (status !== undefined) return isTransientStatus(status);
  return e.name === 'ConnectionError' || e.name === 'TimeoutError' || e.name === 'NoLivingConnectionsError' || e.name === 'RequestAbortedError';
}

/** A thrown client error: by its HTTP status when it has one (413 halves the request), else a transport failure. */
export function decideBulkError(err: unknown, explain: (err: unknown, what: string) => Error): Decision {
  const e = err as { meta?: { statusCode?: number | null; headers?: Record<string, string> } };
  const status = e.meta?.statusCode;
  const reason = explain(err, '_bulk failed').message;
  // A dropped connection comes with a meta whose statusCode is 0 (Elasticsearch's client) or null
  // (OpenSearch's): there was no answer, so it is a transport failure, retried.
  if (typeof status === 'number' && status > 0) {
    const d = decideStatus(status, '_bulk', parseRetryAfter(e.meta?.headers?.['retry-after']));
    return d.kind === 'ok' ? d : { ...d, reason };
  }
  return { kind: 'retry', reason };
}

export function describeError(error: unknown): string {
  if (!error) return 'no reason given';
  if (typeof error === 'string') return error;
  const e = error as { type?: string; reason?: string };
  return [e.type, e.reason].filter(Boolean).join(': ') || JSON.stringify(error);
}
