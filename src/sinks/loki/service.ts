import type { DeliveryService } from '../delivery/types.js';
import { PermanentExportError } from '../../core/errors.js';
import type { LokiExporterConfig } from './config.js';
import type { LokiRequest } from './request_builder.js';
import type { LokiResponse } from './retry.js';

/** Pushes to `{url}/loki/api/v1/push` with Node's fetch (Loki has no official JavaScript client). */
export class LokiService implements DeliveryService<LokiRequest, LokiResponse> {
  readonly label: string;
  private readonly pushUrl: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly config: LokiExporterConfig) {
    this.label = `loki exporter '${config.id}' (${config.url})`;
    this.pushUrl = `${config.url}/loki/api/v1/push`;
    const headers: Record<string, string> = { 'user-agent': 'logship', ...config.headers };
    if (config.tenantId) headers['x-scope-orgid'] = config.tenantId;
    if (config.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${config.username}:${config.password ?? ''}`).toString('base64')}`;
    if (config.bearerToken) headers.authorization = `Bearer ${config.bearerToken}`;
    this.headers = headers;
  }

  /**
   * An empty push: Loki authenticates it and answers 204 without storing anything, so a wrong
   * token or tenant fails before any shard starts. Unreachable hosts are left to the shards'
   * retries (check does not stall on them).
   */
  async check(): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.pushUrl, { method: 'POST', headers: { ...this.headers, 'content-type': 'application/json' }, body: '{"streams":[]}', signal: AbortSignal.timeout(this.config.requestTimeoutMs) });
    } catch {
      return;
    }
    const text = await response.text().catch(() => '');
    if (response.status === 401 || response.status === 403) {
      throw new PermanentExportError(`${this.label}: HTTP ${response.status} (${response.status === 401 ? 'authentication failed: check basicAuth, bearerToken or tenantId' : 'not allowed: check the token\'s permissions and tenantId'})${text ? `: ${text.trim().split('\n')[0]}` : ''}`);
    }
  }

  async send(request: LokiRequest): Promise<LokiResponse> {
    const headers: Record<string, string> = { ...this.headers, 'content-type': request.contentType };
    if (request.contentEncoding) headers['content-encoding'] = request.contentEncoding;
    const response = await fetch(this.pushUrl, { method: 'POST', headers, body: request.body as unknown as Uint8Array<ArrayBuffer>, signal: AbortSignal.timeout(this.config.requestTimeoutMs) });
    const text = response.status >= 300 ? await response.text() : (await response.arrayBuffer(), '');
    return { status: response.status, retryAfter: response.headers.get('retry-after'), text };
  }

  async close(): Promise<void> {}
}
