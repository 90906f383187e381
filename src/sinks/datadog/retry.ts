import type { Decision } from '../delivery/decision.js';
import { decideIntakeAnswer, oneLine, parsedBody, type IntakeAnswer } from '../delivery/intake.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';

/**
 * Datadog's intake answers a whole request (202 with `{}`, no per-log results), so the shared
 * intake rules apply: 413 halves, 408/429/5xx retry (Retry-After, else X-RateLimit-Reset),
 * 401/403 stop the run, a 400 is narrowed down to the refused log, which is dead-lettered.
 */
export function decideDatadogAnswer(request: JsonItemsRequest, a: IntakeAnswer): Decision {
  return decideIntakeAnswer(request, a, describeDatadogError, 'check apiKey: Datadog refused the API key');
}

/** Datadog's error shape `{"errors":[{"status","title","detail"}]}` (or `{"errors":["…"]}`) as one phrase. */
export function describeDatadogError(body: string): string {
  const e = parsedBody(body) as { errors?: unknown[] } | string | null;
  if (e && typeof e === 'object' && Array.isArray(e.errors) && e.errors.length > 0) {
    const first = e.errors[0] as { title?: string; detail?: string } | string;
    const text = typeof first === 'string' ? first : [first.title, first.detail].filter(Boolean).join(': ');
    if (text) return oneLine(text);
  }
  return typeof e === 'string' ? oneLine(e) : '';
}
