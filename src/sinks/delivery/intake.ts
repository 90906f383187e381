import { decideStatus, parseRetryAfter, type Decision } from './decision.js';
import type { DeliveryRequest } from './types.js';

/** What an HTTP log intake answered to a whole request: status, the headers that matter, body text. */
export interface IntakeAnswer {
  status: number;
  retryAfter?: string | undefined;
  /** Seconds until a rate-limit window resets (Datadog's X-RateLimit-Reset), used when Retry-After is absent. */
  rateLimitReset?: string | undefined;
  /** Read only for failures (a 2xx body carries nothing the decision needs). */
  body: string;
}

/**
 * For intakes that accept or refuse a request as a whole, with no per-event results (Datadog,
 * New Relic): 2xx delivered; 413 halves the request; 408/429/5xx retry, honouring Retry-After;
 * 401/403 stop the run (a wrong key); a 400 (the platform could not take the payload) is
 * narrowed down by halving until the one event it refuses is alone, and that one is
 * dead-lettered, so one malformed event never blocks the rest. `describe` turns the platform's
 * error body into a short phrase; `keyHint` says which option to check on 401/403.
 */
export function decideIntakeAnswer(request: DeliveryRequest, a: IntakeAnswer, describe: (body: string) => string, keyHint: string): Decision {
  const detail = a.body ? describe(a.body) : '';
  const what = `HTTP ${a.status}${detail ? `: ${detail}` : ''}`;
  if (a.status >= 200 && a.status < 300) return { kind: 'ok' };
  if (a.status === 401 || a.status === 403) return { kind: 'fatal', reason: `${what} (${keyHint})` };
  if (a.status === 400) {
    if (request.count > 1) return { kind: 'split', reason: what };
    return { kind: 'partial', retry: [], dead: [{ item: 0, status: 400, reason: what, error: parsedBody(a.body) }], reason: what };
  }
  const d = decideStatus(a.status, 'intake', parseRetryAfter(a.retryAfter) ?? parseRetryAfter(a.rateLimitReset));
  return d.kind === 'ok' ? d : { ...d, reason: a.status === 413 ? `${what} (request too large)` : what };
}

export function parsedBody(body: string): unknown {
  if (!body) return null;
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/** A platform's error text as one short line for the run's message. */
export function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
