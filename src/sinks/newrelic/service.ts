import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { IntakeAnswer } from '../delivery/intake.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';
import type { DeliveryService } from '../delivery/types.js';
import { NEWRELIC_LIMITS, type NewRelicExporterConfig } from './config.js';
import { newRelicEnvelope } from './request_builder.js';

const gzip = promisify(zlib.gzip);

/** Answer for a body that would pass the 1 MB per POST: the request is halved without being sent. */
export const TOO_LARGE_UNSENT = 413;

/**
 * Posts the detailed payload to `{basePath}/log/v1` with Node's fetch (New Relic has no
 * official Node client for its Log API), `Api-Key` header, gzip by default.
 */
export class NewRelicService implements DeliveryService<JsonItemsRequest, IntakeAnswer> {
  readonly label: string;
  private readonly url: string;
  private readonly prefix: string;
  private readonly suffix: string;

  constructor(private readonly config: NewRelicExporterConfig) {
    this.label = `newrelic exporter '${config.id}' (${config.basePath})`;
    this.url = `${config.basePath}/log/v1`;
    ({ prefix: this.prefix, suffix: this.suffix } = newRelicEnvelope(config));
  }

  /**
   * The Log API has no side-effect-free call to validate a key, so a wrong key surfaces on the
   * first request: a 403 stops the run before the offset moves.
   */
  async check(): Promise<void> {}

  async send(request: JsonItemsRequest): Promise<IntakeAnswer> {
    const json = request.body(this.prefix, this.suffix);
    const gzipped = this.config.compression === 'gzip';
    const body = gzipped ? await gzip(json, { level: 6 }) : json;
    if (body.length > NEWRELIC_LIMITS.maxPayloadBytes) {
      return { status: TOO_LARGE_UNSENT, body: `body of ${body.length} bytes${gzipped ? ' compressed' : ''} is over New Relic's ${NEWRELIC_LIMITS.maxPayloadBytes} bytes per POST (not sent)` };
    }
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'Api-Key': this.config.apiKey };
    if (gzipped) headers['Content-Encoding'] = 'gzip';
    const response = await fetch(this.url, { method: 'POST', headers, body: body as Uint8Array<ArrayBuffer>, signal: AbortSignal.timeout(this.config.requestTimeoutMs) });
    const text = await response.text(); // drained either way, so the connection goes back to the pool
    return { status: response.status, retryAfter: response.headers.get('retry-after') ?? undefined, body: response.ok ? '' : text };
  }

  async close(): Promise<void> {}
}
