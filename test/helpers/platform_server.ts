import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

/** One request as the platform received it; `body` is decoded from gzip when it was sent gzipped. */
export interface ReceivedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** The bytes on the wire (compressed, if they were). */
  raw: Buffer;
  body: Buffer;
  /** Date.now() on arrival: lets a test check a lower bound (a Retry-After honoured), never a speed. */
  at: number;
}

/** What a platform answers. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** An injected failure: an answer in the platform's own error shape, or a dropped connection. */
export type Fault = Answer | { reset: true };

/**
 * The shared skeleton of the protocol-faithful platform servers under test/helpers/platforms:
 * a loopback HTTP server that decodes request bodies, hands them to the platform's `handle`
 * (which speaks the platform's protocol, enforces its limits and keeps what it accepted), and can
 * be told to answer the next requests with faults. A fault that was asked for and never delivered
 * fails the test that asked for it (`assertFaultsDelivered`), rather than leaking into the next one.
 * Each platform extends it and writes only `handle`; the plumbing lives here once.
 */
export abstract class PlatformEndpoint {
  readonly requests: ReceivedRequest[] = [];
  private readonly faults: { fault: Fault; matches: (r: ReceivedRequest) => boolean }[] = [];
  private httpServer: http.Server | null = null;
  private port = 0;

  /** `tls`: serve HTTPS with this key and certificate (for SDKs that refuse tokens over plain HTTP). */
  constructor(private readonly tls?: { key: string | Buffer; cert: string | Buffer }) {}

  /** The platform's protocol: one request in, the platform's answer out. */
  protected abstract handle(r: ReceivedRequest): Answer | Promise<Answer>;

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void this.serve(req, Buffer.concat(chunks), res);
      });
    };
    const server = this.tls ? https.createServer(this.tls, listener) : http.createServer(listener);
    server.keepAliveTimeout = 60_000;
    this.httpServer = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** The next requests (matching `matches`, by default any) get these faults, one each, in order. */
  failNext(faults: Fault[], matches: (r: ReceivedRequest) => boolean = () => true): void {
    for (const fault of faults) this.faults.push({ fault, matches });
  }

  assertFaultsDelivered(): void {
    const left = this.faults.length;
    this.faults.length = 0;
    if (left > 0) throw new Error(`${left} injected fault(s) were never delivered: the test did not exercise what it asked for`);
  }

  async stop(): Promise<void> {
    const server = this.httpServer;
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private async serve(req: http.IncomingMessage, raw: Buffer, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body = raw;
    try {
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(raw);
      else if (req.headers['content-encoding'] === 'deflate') body = zlib.inflateSync(raw);
    } catch {
      return this.reply(res, { status: 400, body: 'bad content encoding' });
    }
    const received: ReceivedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, raw, body, at: Date.now() };
    this.requests.push(received);
    const at = this.faults.findIndex((f) => f.matches(received));
    if (at >= 0) {
      const { fault } = this.faults.splice(at, 1)[0]!;
      if ('reset' in fault) {
        req.socket.destroy();
        return;
      }
      return this.reply(res, fault);
    }
    try {
      this.reply(res, await this.handle(received));
    } catch (err) {
      this.reply(res, { status: 500, body: String(err) });
    }
  }

  private reply(res: http.ServerResponse, a: Answer): void {
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(a.body ?? '');
  }
}
