import protobuf from 'protobufjs/minimal.js';
import { decideStatus, parseRetryAfter, type Decision } from '../delivery/decision.js';
import type { HttpAnswer } from '../delivery/http_client.js';

/** ExportLogsServiceResponse.partial_success, as the official deserializers return it. */
export interface OtlpPartialSuccess {
  rejectedLogRecords?: number | string | { toNumber(): number };
  errorMessage?: string;
}

export interface OtlpResponse {
  http: HttpAnswer;
  /** The decoded ExportLogsServiceResponse of a 2xx answer. */
  partialSuccess?: OtlpPartialSuccess;
}

/** The only statuses the OTLP/HTTP spec allows to retry. */
const RETRYABLE = new Set([429, 502, 503, 504]);

/**
 * OTLP/HTTP's rules (opentelemetry-proto, otlp.md):
 * - 2xx without `partial_success.rejected_log_records` → delivered;
 * - 2xx with rejected records → not retried (the spec forbids it). OTLP says how many were
 *   rejected, not which, so every record of that request is dead-lettered with the count and
 *   the collector's message: the file is a superset of what was lost, never a subset;
 * - 429, 502, 503, 504 → retried, honouring Retry-After; any other 5xx is not retryable → fatal;
 * - 400 → halved until the bad record stands alone, which is dead-lettered with the collector's message;
 * - 413 → halved; 401/403 → fatal (one line naming the exporter); other 4xx → fatal.
 */
export function decideOtlpResponse(response: OtlpResponse, count: number, label: string): Decision {
  const { http } = response;
  if (http.status >= 200 && http.status < 300) {
    const rejected = toNumber(response.partialSuccess?.rejectedLogRecords);
    if (rejected <= 0) return { kind: 'ok' };
    const message = response.partialSuccess?.errorMessage ?? '';
    const reason = `collector rejected ${rejected} of the ${count} log records of this request (OTLP partial_success does not say which)${message ? `: ${message}` : ''}`;
    const error = { rejectedLogRecords: rejected, requestLogRecords: count, errorMessage: message };
    return { kind: 'partial', retry: [], dead: Array.from({ length: count }, (_, item) => ({ item, reason, error })), reason };
  }
  const detail = statusMessage(http);
  const what = `${label}: HTTP ${http.status}${detail ? ` (${detail})` : ''}`;
  if (RETRYABLE.has(http.status)) return { kind: 'retry', reason: what, retryAfterMs: parseRetryAfter(first(http.headers['retry-after'])) };
  if (http.status === 400) return { kind: 'split', reason: what };
  const d = decideStatus(http.status, label);
  if (d.kind === 'fatal' && (http.status === 401 || http.status === 403)) return { kind: 'fatal', reason: `${what}: authentication failed: check authorizationHeaderName/authorizationHeaderValue` };
  if (d.kind === 'split') return { kind: 'split', reason: what };
  return { kind: 'fatal', reason: what };
}

function toNumber(v: OtlpPartialSuccess['rejectedLogRecords']): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  return v.toNumber();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The `message` of a google.rpc.Status error body (protobuf field 2, or JSON), or a text body's first line. */
export function statusMessage(http: HttpAnswer): string {
  if (http.body.length === 0) return '';
  const type = first(http.headers['content-type']) ?? '';
  try {
    if (type.includes('protobuf')) {
      const reader = protobuf.Reader.create(http.body);
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        if (tag >>> 3 === 2 && (tag & 7) === 2) return reader.string();
        reader.skipType(tag & 7);
      }
      return '';
    }
    if (type.includes('json')) {
      const v = JSON.parse(http.body.toString('utf8')) as { message?: unknown };
      return typeof v.message === 'string' ? v.message : '';
    }
  } catch {
    // fall through to the raw text
  }
  return http.body.toString('utf8').split('\n')[0]!.slice(0, 200);
}
