import { decideStatus, parseRetryAfter, type Decision } from '../delivery/decision.js';
import type { LokiRequest } from './request_builder.js';

export interface LokiResponse {
  status: number;
  retryAfter: string | null;
  text: string;
}

/**
 * Loki's per-entry refusals (distributor validation and the ingester's ordering rule). Loki
 * stores the other entries of the push and answers 400 naming only the last refusal and a count,
 * so which entries failed is not in the answer.
 */
const ENTRY_REFUSALS = /entry too far behind|timestamp too old|timestamp too new|too far in the future|max entry size|line too long|structured metadata.*(?:size|entries)|greater_than_max_sample_age|out of order/i;

/**
 * 2xx delivered; 429 (ingestion rate limit) and 5xx retried, honouring Retry-After; 413 halved.
 * A 400 for some entries is halved too, down to single entries: Loki drops an entry identical in
 * stream, timestamp and line to one it holds, so resending the accepted part duplicates nothing,
 * and the entries it keeps refusing end alone and are dead-lettered with Loki's own reason. Any
 * other 4xx (bad labels, structured metadata disabled, a wrong token) stops the run.
 */
export function decideLokiResponse(request: LokiRequest, response: LokiResponse, what: string): Decision {
  const { status } = response;
  const detail = firstLine(response.text);
  if (status === 400 && ENTRY_REFUSALS.test(response.text)) {
    return { kind: 'split', reason: `Loki refused ${request.count === 1 ? 'the entry' : 'entries'}: ${detail}` };
  }
  const d = decideStatus(status, what, parseRetryAfter(response.retryAfter));
  if (d.kind === 'ok' || !detail) return d;
  return { ...d, reason: `${d.reason}: ${detail}` };
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
