import type { Decision } from '../delivery/decision.js';
import { decideIntakeAnswer, oneLine, parsedBody, type IntakeAnswer } from '../delivery/intake.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';

/**
 * The Log API accepts or refuses a whole POST (202 with a `requestId`, no per-log results), so
 * the shared intake rules apply: 413 (or a body logship found over 1 MB before sending) halves,
 * 408/429/5xx retry honouring Retry-After, 401/403 stop the run, a 400 is narrowed down to the
 * refused log, which is dead-lettered.
 */
export function decideNewRelicAnswer(request: JsonItemsRequest, a: IntakeAnswer): Decision {
  return decideIntakeAnswer(request, a, describeNewRelicError, 'check apiKey: New Relic refused the key');
}

/** New Relic's error bodies (`{"error":"…"}`, `{"error":{"title":"…"}}`, or text) as one phrase. */
export function describeNewRelicError(body: string): string {
  const e = parsedBody(body) as { error?: unknown; message?: unknown } | string | null;
  if (e && typeof e === 'object') {
    const inner = e.error ?? e.message;
    if (typeof inner === 'string') return oneLine(inner);
    if (inner && typeof inner === 'object') {
      const t = inner as { title?: string; message?: string };
      return oneLine(t.title ?? t.message ?? JSON.stringify(inner));
    }
    return oneLine(JSON.stringify(e));
  }
  return typeof e === 'string' ? oneLine(e) : '';
}
