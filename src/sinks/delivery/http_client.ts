import http from 'node:http';
import https from 'node:https';

/** An HTTP answer with its body read in full. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpClientOptions {
  /** Sockets kept open to the host: one per request in flight is enough. */
  maxSockets: number;
  timeoutMs: number;
  /** TLS: skip certificate verification (self-signed HEC certificates are common). */
  trustAllSsl?: boolean;
  /** TLS: PEM of a private CA. */
  caCertificate?: string;
}

/**
 * A keep-alive HTTP(S) client for platforms without an official Node SDK (Splunk HEC, OTLP/HTTP).
 * Node's http module rather than fetch: TLS options (a private CA, self-signed HEC certificates)
 * and a socket pool sized to `concurrency`, with no extra dependency. Transport failures reject
 * with Node's own error codes (ECONNREFUSED, ECONNRESET…), which the core's
 * `decideTransportError` classifies; a timeout rejects with a `TimeoutError`.
 */
export class HttpClient {
  private readonly agent: http.Agent;
  private readonly secure: boolean;

  constructor(
    readonly base: URL,
    private readonly options: HttpClientOptions,
  ) {
    this.secure = base.protocol === 'https:';
    const common = { keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets };
    this.agent = this.secure
      ? new https.Agent({ ...common, rejectUnauthorized: !options.trustAllSsl, ca: options.caCertificate })
      : new http.Agent(common);
  }

  request(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<HttpAnswer> {
    const url = new URL(path, this.base);
    const send = this.secure ? https.request : http.request;
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = send(url, { method, agent: this.agent, headers: body ? { ...headers, 'content-length': String(body.length) } : headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.setTimeout(this.options.timeoutMs, () => {
        const err = new Error(`no answer within ${this.options.timeoutMs} ms`);
        err.name = 'TimeoutError';
        req.destroy(err);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
