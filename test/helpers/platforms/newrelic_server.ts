import { randomUUID } from 'node:crypto';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

export function newRelicError(status: number, error: string): Answer {
  return { status, body: JSON.stringify({ error }) };
}

/** A log as New Relic stores it: common attributes merged under the log's own. */
export interface StoredLog {
  timestamp: number;
  message: string;
  attributes: Record<string, unknown>;
}

/**
 * New Relic's Log API (`POST /log/v1`) as documented: `Api-Key` (or `X-License-Key`) checked
 * (403 otherwise), the detailed payload `[{common:{attributes}, logs:[{timestamp, message,
 * attributes}]}]`, at most 1,000,000 bytes per POST as sent (413 above), at most 255
 * attributes per log (400 above), string values longer than New Relic stores counted (logship
 * must never send one), 202 `{"requestId"}` when accepted.
 */
export class NewRelicLogApi extends PlatformEndpoint {
  readonly logs: StoredLog[] = [];
  maxPostBytes = 0;
  overlongValues = 0;
  refuses: (log: StoredLog) => boolean = () => false;

  constructor(readonly apiKey: string) {
    super();
  }

  keys(attribute = 'logship_key'): string[] {
    return this.logs.map((l) => l.attributes[attribute] as string);
  }

  protected handle(r: ReceivedRequest): Answer {
    if (r.method !== 'POST' || r.path !== '/log/v1') return newRelicError(404, `no route ${r.method} ${r.path}`);
    const key = r.headers['api-key'] ?? r.headers['x-license-key'];
    if (key !== this.apiKey) return newRelicError(403, 'Invalid API key');
    if (r.raw.length > 1_000_000) return newRelicError(413, `payload of ${r.raw.length} bytes is over 1MB`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body.toString('utf8'));
    } catch {
      return newRelicError(400, 'invalid JSON');
    }
    const blocks = (Array.isArray(parsed) ? parsed : [{ logs: [parsed] }]) as { common?: { attributes?: Record<string, unknown> }; logs?: unknown[] }[];
    const stored: StoredLog[] = [];
    for (const block of blocks) {
      if (!block || !Array.isArray(block.logs)) return newRelicError(400, 'each block needs a logs array');
      const common = block.common?.attributes ?? {};
      for (const raw of block.logs as { timestamp?: unknown; message?: unknown; attributes?: Record<string, unknown> }[]) {
        if (typeof raw.timestamp !== 'number') return newRelicError(400, 'timestamp must be a number (ms or s since the epoch)');
        const attributes = { ...common, ...raw.attributes };
        if (Object.keys(attributes).length > 255) return newRelicError(400, 'more than 255 attributes in a log');
        for (const v of [raw.message, ...Object.values(attributes)]) {
          if (typeof v === 'string' && v.length > 4094 && Buffer.byteLength(v.slice(4094)) > 128_000) this.overlongValues++;
        }
        stored.push({ timestamp: raw.timestamp, message: String(raw.message ?? ''), attributes });
      }
    }
    if (stored.some((l) => this.refuses(l))) return newRelicError(400, 'log rejected');
    this.maxPostBytes = Math.max(this.maxPostBytes, r.raw.length);
    this.logs.push(...stored);
    return { status: 202, body: JSON.stringify({ requestId: randomUUID() }) };
  }
}
