import type { SearchExporterConfig } from './config.js';
import { checkWithRetries } from '../delivery/check.js';
import type { Decision } from '../delivery/decision.js';
import { httpFailure, PermanentExportError } from '../../core/errors.js';

interface RawResponse { statusCode: number | null; body: unknown }

interface Transport {
  request(method: string, path: string, body?: Buffer): Promise<RawResponse>;
  close(): Promise<void>;
}

/** Only the configured engine's client is loaded (each is a sizeable import per worker thread). */
async function openTransport(config: SearchExporterConfig): Promise<Transport> {
  const auth = config.apiKey ? { apiKey: config.apiKey } : config.username ? { username: config.username, password: config.password! } : undefined;
  const tls = config.trustAllSsl || config.caCertificate ? { rejectUnauthorized: !config.trustAllSsl, ca: config.caCertificate } : undefined;
  const headers = { ...config.headers };
  if (config.type === 'elasticsearch') {
    const { Client } = await import('@elastic/elasticsearch');
    const client = new Client({ nodes: config.hosts, auth, tls, headers, maxRetries: 0, requestTimeout: config.requestTimeoutMs, compression: false });
    return {
      async request(method, path, body) {
        const r = await client.transport.request({ method, path, bulkBody: body }, { meta: true, maxRetries: 0, headers: body ? { 'content-type': 'application/x-ndjson' } : undefined });
        return { statusCode: r.statusCode, body: r.body };
      },
      close: () => client.close(),
    };
  }
  const { Client } = await import('@opensearch-project/opensearch');
  if (config.apiKey) headers.authorization = `ApiKey ${config.apiKey}`;
  const client = new Client({ nodes: config.hosts, auth: config.username ? { username: config.username, password: config.password! } : undefined, ssl: tls, headers, maxRetries: 0, requestTimeout: config.requestTimeoutMs });
  return {
    async request(method, path, body) {
      const r = await client.transport.request({ method, path, bulkBody: body as unknown as string }, { maxRetries: 0 });
      return { statusCode: r.statusCode, body: r.body };
    },
    close: () => client.close(),
  };
}

/**
 * The official client for each engine, used as an HTTP transport with its own retries off:
 * logship decides per item what to retry, which a whole-request retry cannot do.
 */
export class SearchService {
  readonly label: string;

  private constructor(
    private readonly config: SearchExporterConfig,
    private readonly transport: Transport,
  ) {
    this.label = `${config.type} exporter '${config.id}' (${config.hosts.join(', ')})`;
  }

  static async create(config: SearchExporterConfig): Promise<SearchService> {
    return new SearchService(config, await openTransport(config));
  }

  private request(method: string, path: string, body?: Buffer): Promise<RawResponse> {
    return this.transport.request(method, path, body);
  }

  /** `GET /`: wrong credentials fail at once; an unreachable cluster is retried like a request. */
  async check(): Promise<void> {
    await checkWithRetries(this.config, this.label, async (): Promise<Decision> => {
      try {
        await this.request('GET', '/');
        return { kind: 'ok' };
      } catch (err) {
        const failure = this.explain(err, 'cannot reach the cluster');
        return { kind: failure instanceof PermanentExportError ? 'fatal' : 'retry', reason: failure.message };
      }
    });
  }

  async bulk(body: Buffer): Promise<unknown> {
    // The cluster drops what the decision does not read (_index, _id, _version, shards…): a
    // 5 000-item response shrinks to a fraction, less to send and for us to parse.
    return (await this.request('POST', '/_bulk?filter_path=errors,items.*.status,items.*.error', body)).body;
  }

  async listIndices(pattern: string): Promise<string[]> {
    const r = await this.request('GET', `/_cat/indices/${encodeURIComponent(pattern)}?format=json&h=index`);
    return ((r.body as { index: string }[]) ?? []).map((x) => x.index);
  }

  async deleteIndex(name: string): Promise<void> {
    await this.request('DELETE', `/${encodeURIComponent(name)}`);
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  explain(err: unknown, what: string): Error {
    const e = err as { name?: string; message?: string; meta?: { statusCode?: number } };
    const status = e.meta?.statusCode;
    const hint = status === 401 ? ' (authentication failed: check connection.basicAuth or apiKey)' : status === 403 ? ' (not allowed)' : '';
    const detail = status ? `HTTP ${status}` : `${e.name ?? 'Error'}: ${(e.message ?? String(err)).split('\n')[0]}`;
    const message = `${this.label}: ${what}: ${detail}${hint}`;
    return httpFailure(status, message);
  }
}
