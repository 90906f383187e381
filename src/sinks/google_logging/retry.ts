import { decideStatus, decideTransportError, parseRetryAfter, type DeadItem, type Decision } from '../delivery/decision.js';

/** gRPC codes that may pass on a retry (google.rpc.Code). */
const TRANSIENT_CODES = new Set([4, 8, 10, 13, 14]);
/** gRPC code → the HTTP status the REST API answers with (google.rpc.Code's mapping). */
const HTTP_OF_CODE: Record<number, number> = { 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 10: 409, 13: 500, 14: 503, 16: 401 };

interface RpcStatus { code?: number; message?: string; status?: string; details?: { '@type'?: string; logEntryErrors?: Record<string, { code?: number; message?: string }> }[] }

/** The google.rpc.Status in an error the client threw, from the HTTP body it carries. */
function rpcStatusOf(err: { response?: { data?: unknown }; message?: string }): RpcStatus | undefined {
  const data = err.response?.data;
  const candidates: unknown[] = [data, err.message];
  for (const c of candidates) {
    let v = c;
    if (typeof v === 'string') {
      try {
        v = JSON.parse(v);
      } catch {
        continue;
      }
    }
    const e = (v as { error?: RpcStatus } | undefined)?.error;
    if (e && typeof e === 'object') return e;
  }
  return undefined;
}

/**
 * A thrown client error, decided by its HTTP status: with `partialSuccess`, a 400 carrying
 * WriteLogEntriesPartialErrors means the other entries were written; the listed ones are
 * resent when their code may pass and dead-lettered otherwise (invalid entries). 429 and 5xx
 * retry (the client itself retries neither over REST), honouring Retry-After; 401/403 stop.
 */
export function decideWriteError(err: unknown, count: number, what: string): Decision {
  const e = err as { status?: number; code?: unknown; response?: { status?: number; headers?: Record<string, string> | { get?(k: string): string | null }; data?: unknown }; message?: string };
  const status = e.status ?? e.response?.status ?? (typeof e.code === 'number' ? HTTP_OF_CODE[e.code] : undefined);
  if (status === undefined) return decideTransportError(err, what);
  const rpc = rpcStatusOf(e);
  const partial = rpc?.details?.find((d) => d['@type']?.endsWith('google.logging.v2.WriteLogEntriesPartialErrors'))?.logEntryErrors;
  if (status === 400 && partial) {
    const retry: number[] = [];
    const dead: DeadItem[] = [];
    for (const [index, s] of Object.entries(partial)) {
      const item = Number(index);
      if (!Number.isInteger(item) || item < 0 || item >= count) return { kind: 'fatal', reason: `${what}: partial errors name entry ${index} of ${count}` };
      if (TRANSIENT_CODES.has(s.code ?? 2)) retry.push(item);
      else dead.push({ item, status: 400, code: `rpc_${s.code ?? 2}`, reason: s.message ?? 'invalid entry', error: s });
    }
    return { kind: 'partial', retry, dead, reason: `${retry.length} entries failed for now: ${rpc?.message ?? ''}` };
  }
  const headers = e.response?.headers;
  const retryAfter = headers && typeof (headers as { get?: unknown }).get === 'function' ? (headers as { get(k: string): string | null }).get('retry-after') : (headers as Record<string, string> | undefined)?.['retry-after'];
  const d = decideStatus(status, what, parseRetryAfter(retryAfter));
  if (d.kind === 'ok') return d;
  const detail = rpc ? `${rpc.status ?? ''}${rpc.message ? `: ${rpc.message.split('\n')[0]}` : ''}` : '';
  return detail ? { ...d, reason: `${d.reason} ${detail}`.trim() } : d;
}
