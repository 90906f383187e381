import { decideStatus, decideTransportError, parseRetryAfter, type Decision } from '../delivery/decision.js';
import type { LogsRequest } from './request_builder.js';

/** One failed HTTP call of an upload, as the SDK reports it: the error and the very rows it carried. */
export interface CallFailure {
  cause: unknown;
  failedLogs: readonly unknown[];
}

/** What `upload` left undelivered: nothing, or the failed calls (AggregateLogsUploadError's `errors`). */
export interface UploadOutcome {
  failures: CallFailure[];
}

interface RestErrorLike {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
  response?: { headers?: { get(name: string): string | undefined }; bodyAsText?: string | null };
}

/** The ingestion API's own `{"error":{"code","message"}}`, else the SDK's message, on one line. */
export function describeCallError(err: unknown): string {
  const e = err as RestErrorLike;
  let detail = e?.message ?? String(err);
  const body = e?.response?.bodyAsText;
  if (body) {
    try {
      const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
      if (parsed.error) detail = [parsed.error.code, parsed.error.message].filter(Boolean).join(': ');
    } catch {
      // not JSON: keep the SDK's message
    }
  }
  else if (e?.code && typeof e.statusCode === 'number' && !detail.startsWith(e.code)) detail = `${e.code}: ${detail}`;
  const status = typeof e?.statusCode === 'number' ? `HTTP ${e.statusCode} ` : '';
  return `${status}${detail}`.split('\n')[0]!.trim();
}

/** Milliseconds the service asked to wait: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`. */
function retryAfterOf(err: unknown): number | undefined {
  const headers = (err as RestErrorLike)?.response?.headers;
  if (!headers) return undefined;
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const v = headers.get(name);
    if (v && /^\d+$/.test(v.trim())) return Number(v.trim());
  }
  return parseRetryAfter(headers.get('retry-after'));
}

/** One failed call by its status: 429/5xx/408 retry, 413 split, 401/403 and other 4xx fatal, no status (network) retry. */
export function decideCall(err: unknown, label: string): Decision {
  const status = (err as RestErrorLike)?.statusCode;
  const what = `${label}: upload`;
  if (typeof status === 'number' && status >= 400) {
    const d = decideStatus(status, what, retryAfterOf(err));
    if (d.kind === 'ok') return d;
    const hint = status === 401 ? ' (check tenantId, clientId and clientSecret)' : status === 403 ? ' (the service principal needs the Monitoring Metrics Publisher role on the DCR)' : status === 404 ? ' (check ruleId and streamName against the DCR)' : '';
    return { ...d, reason: `${what}: ${describeCallError(err)}${hint}` };
  }
  const d = decideTransportError(err, what);
  return d.kind === 'retry' ? { ...d, reason: `${what}: ${describeCallError(err)}` } : d;
}

/**
 * An upload's outcome: all calls ok; every row failed (the first call's decision stands for the
 * request: retry with its Retry-After, split on 413, fatal on 4xx); or some calls failed, and
 * only their rows are resent (a fatal answer still stops the shard).
 */
export function decideUpload(request: LogsRequest, outcome: UploadOutcome, label: string): Decision {
  if (outcome.failures.length === 0) return { kind: 'ok' };
  const decisions = outcome.failures.map((f) => decideCall(f.cause, label));
  const fatal = decisions.find((d) => d.kind === 'fatal');
  if (fatal) return fatal;
  const failed = request.positionsOf(outcome.failures.flatMap((f) => f.failedLogs));
  if (failed.length >= request.count) return decisions[0]!;
  const retryAfterMs = Math.max(0, ...decisions.map((d) => (d.kind === 'retry' ? d.retryAfterMs ?? 0 : 0))) || undefined;
  const first = decisions[0]!;
  return { kind: 'partial', retry: failed, dead: [], reason: `${failed.length} of ${request.count} rows failed (${'reason' in first ? first.reason : 'unknown'})`, retryAfterMs };
}
