import http from 'node:http';
import type net from 'node:net';

export interface BulkServer {
  endpoint: string;
  /** index -> id -> document text */
  docs: Map<string, Map<string, string>>;
  /** Status for a whole request (by 1-based request number), or undefined to process it. */
  requestStatus: (n: number) => number | undefined;
  /** Status for one item (by id, document and its 1-based attempt), or undefined to store it. */
  itemStatus: (id: string, doc: string, attempt: number) => number | undefined;
  bulkRequests: number;
  stop(): Promise<void>;
  count(): number;
}

/**
 * A real HTTP server speaking enough of Elasticsearch for the official clients: `GET /` with the
 * product header, `_bulk` NDJSON with per-item statuses (create conflicts as 409), scripted
 * whole-request and per-item failures, basic auth, `_cat/indices` and index deletion.
 */
export async function startBulkServer(auth?: { username: string; password: string }): Promise<BulkServer> {
  const attempts = new Map<string, number>();
  const server: BulkServer = {
    endpoint: '',
    docs: new Map(),
    requestStatus: () => undefined,
    itemStatus: () => undefined,
    bulkRequests: 0,
    stop: async () => {},
    count: () => [...server.docs.values()].reduce((s, m) => s + m.size, 0),
  };
  const expected = auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined;
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
    res.end(JSON.stringify(body));
  };
  const httpServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (expected && req.headers.authorization !== expected) {
        return send(res, 401, { error: { type: 'security_exception', reason: 'unable to authenticate user [kestra_user]' }, status: 401 });
      }
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'GET' && url.pathname === '/') return send(res, 200, { name: 'fake', cluster_name: 'logship-test', version: { number: '8.17.0' }, tagline: 'You Know, for Search' });
      if (req.method === 'POST' && url.pathname === '/_bulk') {
        const n = ++server.bulkRequests;
        const whole = server.requestStatus(n);
        if (whole) return send(res, whole, { error: { type: whole === 429 ? 'es_rejected_execution_exception' : 'internal_error', reason: 'scripted' }, status: whole });
        const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
        const items: unknown[] = [];
        let errors = false;
        for (let i = 0; i < lines.length; i += 2) {
          const action = JSON.parse(lines[i]!) as Record<string, { _index: string; _id: string }>;
          const [op, meta] = Object.entries(action)[0]!;
          const doc = lines[i + 1]!;
          const attempt = (attempts.get(meta._id) ?? 0) + 1;
          attempts.set(meta._id, attempt);
          let status = server.itemStatus(meta._id, doc, attempt);
          let error: unknown;
          if (status === undefined) {
            try {
              JSON.parse(doc);
            } catch {
              status = 400;
            }
          }
          if (status === undefined) {
            const index = server.docs.get(meta._index) ?? new Map<string, string>();
            server.docs.set(meta._index, index);
            if (op === 'create' && index.has(meta._id)) {
              status = 409;
              error = { type: 'version_conflict_engine_exception', reason: `[${meta._id}]: version conflict, document already exists` };
            } else {
              status = index.has(meta._id) ? 200 : 201;
              index.set(meta._id, doc);
            }
          } else if (status >= 300) {
            error = status === 400 ? { type: 'mapper_parsing_exception', reason: 'failed to parse field [message] of type [long]' } : { type: 'es_rejected_execution_exception', reason: 'rejected execution' };
          }
          if (status >= 300) errors = true;
          items.push({ [op]: { _index: meta._index, _id: meta._id, status, ...(error ? { error } : { result: 'created' }) } });
        }
        return send(res, 200, { took: 1, errors, items });
      }
      const cat = /^\/_cat\/indices\/(.+)$/.exec(url.pathname);
      if (req.method === 'GET' && cat) {
        const prefix = decodeURIComponent(cat[1]!).replace(/\*$/, '');
        return send(res, 200, [...server.docs.keys()].filter((k) => k.startsWith(prefix)).map((index) => ({ index })));
      }
      if (req.method === 'DELETE') {
        const name = decodeURIComponent(url.pathname.slice(1));
        if (!server.docs.delete(name)) return send(res, 404, { error: { type: 'index_not_found_exception' }, status: 404 });
        return send(res, 200, { acknowledged: true });
      }
      send(res, 400, { error: { type: 'unsupported', reason: `${req.method} ${url.pathname}` }, status: 400 });
    });
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  server.endpoint = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
  server.stop = async () => {
    httpServer.closeAllConnections();
    await new Promise((r) => httpServer.close(r));
  };
  return server;
}
