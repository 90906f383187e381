import { decideStatus, parseRetryAfter, type Decision } from '../delivery/decision.js';
import type { HttpAnswer } from '../delivery/http_client.js';

/** HEC's answer body: `{"text":"Success","code":0}`, with `ackId` under indexer acknowledgement. */
export interface HecReply {
  text?: string;
  code?: number;
  ackId?: number;
  'invalid-event-number'?: number;
}

/** What the service hands the decision: the HTTP answer and, with `useAck`, whether the indexers acknowledged it. */
export interface HecResponse {
  http: HttpAnswer;
  reply: HecReply;
  useAck: boolean;
  /** With `useAck`, for an accepted request: false when no acknowledgement came within `ackTimeout`. */
  acked?: boolean;
}

export function parseHecReply(body: Buffer): HecReply {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    return v && typeof v === 'object' ? (v as HecReply) : {};
  } catch {
    return {};
  }
}

/** HEC codes that reject one event of a batch and say which (`invalid-event-number`). */
const EVENT_CODES = new Set([6, 12, 13, 15]);

function describeReply(reply: HecReply): string {
  return reply.code === undefined ? (reply.text ?? 'no HEC answer body') : `${reply.text ?? 'error'} (code ${reply.code})`;
}

/**
 * HEC's `{text, code}` answers:
 * - code 0 → delivered (with `useAck`, only once acknowledged; no acknowledgement in time → resend);
 * - 401/403, codes 1–4 (token missing, disabled, invalid) → fatal: one line naming the exporter;
 * - code 9 (server busy, 503), 5xx, 429, 408 → retry, honouring Retry-After;
 * - 413 → halve the request;
 * - codes 6/12/13/15 with `invalid-event-number` N → HEC indexed events before N and stopped at N:
 *   N is dead-lettered, the events after it are resent (with `useAck` the events before N are
 *   resent too: nothing of a failed request is acknowledged);
 * - code 7 (index not allowed for the token), 10/11 (channel), 14 (acks disabled) → fatal.
 */
export function decideHecResponse(response: HecResponse, count: number, label: string): Decision {
  const { http, reply } = response;
  const what = `${label}: HTTP ${http.status} ${describeReply(reply)}`;
  if (http.status >= 200 && http.status < 300) {
    if (response.useAck && typeof reply.ackId !== 'number') return { kind: 'fatal', reason: `${what}: useAck is on but HEC returned no ackId (indexer acknowledgement is disabled for the token)` };
    if (response.acked === false) return { kind: 'retry', reason: `${label}: request ${reply.ackId} was not acknowledged by the indexers within ackTimeout` };
    return { kind: 'ok' };
  }
  if (http.status === 401 || http.status === 403 || (reply.code !== undefined && reply.code >= 1 && reply.code <= 4)) {
    return { kind: 'fatal', reason: `${what}: authentication failed: check the token` };
  }
  const bad = reply['invalid-event-number'];
  if (http.status === 400 && reply.code !== undefined && EVENT_CODES.has(reply.code) && typeof bad === 'number' && bad >= 0 && bad < count) {
    const acceptedPrefix = response.useAck ? 0 : bad;
    const retry: number[] = [];
    for (let i = acceptedPrefix; i < count; i++) if (i !== bad) retry.push(i);
    return { kind: 'partial', retry, dead: [{ item: bad, status: http.status, reason: describeReply(reply), error: reply }], reason: what };
  }
  if (reply.code === 7) return { kind: 'fatal', reason: `${what}: the token may not write to this index` };
  if (reply.code === 14) return { kind: 'fatal', reason: `${what}: useAck is on but the token has indexer acknowledgement disabled` };
  if (reply.code === 9) return { kind: 'retry', reason: what, retryAfterMs: parseRetryAfter(header(http, 'retry-after')) };
  const d = decideStatus(http.status, label, parseRetryAfter(header(http, 'retry-after')));
  return d.kind === 'ok' ? d : { ...d, reason: what };
}

function header(http: HttpAnswer, name: string): string | undefined {
  const v = http.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
