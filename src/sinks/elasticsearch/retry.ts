import { isTransientStatus } from '../failures.js';

/**
 * What to do with a _bulk response or failure: Vector's split between the retry decision (this
 * file) and the backoff policy (exponential with full jitter, in run/retry.ts).
 */
export type BulkDecision =
  | { kind: 'ok'; delivered: number; alreadyThere: number }
  | { kind: 'retry-items'; delivered: number; alreadyThere: number; retry: number[]; dead: DeadItem[] }
  | { kind: 'dont-retry'; reason: string };

export interface DeadItem { item: number; status: number; error: unknown }

interface BulkItemResult { status?: number; error?: unknown }
interface BulkResponse { errors?: boolean; items?: Record<string, BulkItemResult>[] }

/** Decides per item: 2xx delivered; 409 on create = delivered by an earlier attempt;
 *  429/5xx retried alone; 401/403 stop the shard; any other status is dead-lettered. */
export function decideBulkResponse(body: BulkResponse, count: number, opType: 'create' | 'index'): BulkDecision {
  const items = body.items;
  if (!Array.isArray(items) || items.length !== count) {
    return { kind: 'dont-retry', reason: `_bulk answered ${Array.isArray(items) ? items.length : 'no'} items for ${count} documents` };
  }
  let delivered = 0;
  let alreadyThere = 0;
  const retry: number[] = [];
  const dead: DeadItem[] = [];
  for (let i = 0; i < count; i++) {
    const result = Object.values(items[i]!)[0] ?? {};
    const status = result.status ?? 500;
    if (status >= 200 && status < 300) delivered++;
    else if (status === 409 && opType === 'create') alreadyThere++;
    else if (status === 429 || status >= 500) retry.push(i);
    else if (status === 401 || status === 403) return { kind: 'dont-retry', reason: `document rejected with HTTP ${status}: ${describeError(result.error)}` };
    else dead.push({ item: i, status, error: result.error ?? null });
  }
  if (retry.length === 0 && dead.length === 0) return { kind: 'ok', delivered, alreadyThere };
  return { kind: 'retry-items', delivered, alreadyThere, retry, dead };
}

/** Whole-request failures: throttling, server errors, timeouts and broken connections retry. */
export function isRetryableRequestError(err: unknown): boolean {
  const e = err as { name?: string; meta?: { statusCode?: number }; statusCode?: number };
  const status = e.meta?.statusCode ?? e.statusCode;
  if (status !== undefined) return isTransientStatus(status);
  return e.name === 'ConnectionError' || e.name === 'TimeoutError' || e.name === 'NoLivingConnectionsError' || e.name === 'RequestAbortedError';
}

export function describeError(error: unknown): string {
  if (!error) return 'no reason given';
  if (typeof error === 'string') return error;
  const e = error as { type?: string; reason?: string };
  return [e.type, e.reason].filter(Boolean).join(': ') || JSON.stringify(error);
}
