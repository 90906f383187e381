import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** Datadog's error shape on the logs intake. */
export function datadogError(status: number, title: string, detail: string): Answer {
  return { status, body: JSON.stringify({ errors: [{ status: String(status), title, detail }] }) };
}

/**
 * Datadog's logs intake (`POST /api/v2/logs`) as the HTTP API documents it: `DD-API-KEY`
 * checked (403 otherwise), a JSON array (or one object) of logs, at most 1000 logs and 5 MB
 * uncompressed per request (413 above 5 MB, 400 above 1000 logs), logs over 1 MB accepted and
 * truncated (counted here: logship must never send one), 202 `{}` when accepted.
 */
export class DatadogIntake extends PlatformEndpoint {
  /** Every log accepted, in arrival order. */
  readonly logs: Record<string, unknown>[] = [];
  oversizeLogs = 0;
  maxRequestBytes = 0;
  maxRequestLogs = 0;
  /** Logs Datadog cannot take: a request holding one is refused with 400, as a malformed payload is. */
  refuses: (log: Record<string, unknown>) => boolean = () => false;

  constructor(readonly apiKey: string) {
    super();
  }

  keys(attribute = 'logship_key'): string[] {
    return this.logs.map((l) => l[attribute] as string);
  }

  protected handle(r: ReceivedRequest): Answer {
    if (r.method !== 'POST' || r.path !== '/api/v2/logs') return datadogError(404, 'Not Found', `no route ${r.method} ${r.path}`);
    if (r.headers['dd-api-key'] !== this.apiKey) return datadogError(403, 'Forbidden', 'API key is invalid');
    if (r.body.length > 5_000_000) return datadogError(413, 'Payload Too Large', 'batch is above 5MB uncompressed');
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body.toString('utf8'));
    } catch {
      return datadogError(400, 'Bad Request', 'invalid JSON payload');
    }
    const logs = (Array.isArray(parsed) ? parsed : [parsed]) as Record<string, unknown>[];
    if (logs.length > 1000) return datadogError(400, 'Bad Request', `array of ${logs.length} logs is above 1000 entries`);
    if (logs.some((l) => l === null || typeof l !== 'object' || Array.isArray(l))) return datadogError(400, 'Bad Request', 'each log must be a JSON object');
    if (logs.some((l) => this.refuses(l))) return datadogError(400, 'Bad Request', 'log rejected by intake');
    this.maxRequestBytes = Math.max(this.maxRequestBytes, r.body.length);
    this.maxRequestLogs = Math.max(this.maxRequestLogs, logs.length);
    for (const l of logs) {
      if (Buffer.byteLength(JSON.stringify(l)) > 1_000_000) this.oversizeLogs++;
      this.logs.push(l);
    }
    return { status: 202, body: '{}' };
  }
}
