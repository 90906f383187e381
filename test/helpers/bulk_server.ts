import { PlatformEndpoint, type Answer, type ReceivedRequest } from './platform_server.js';

/**
 * A server speaking enough of Elasticsearch for the official clients (and OpenSearch's): `GET /`
 * with the product header, `_bulk` NDJSON with per-item statuses (create conflicts as 409),
 * scripted whole-request and per-item failures, basic auth, `_cat/indices` and index deletion.
 * On the shared platform base, so it takes injected faults (`failNext`) like the others.
 */
export class BulkEndpoint extends PlatformEndpoint {
  /** index -> id -> document text */
  readonly docs = new Map<string, Map<string, string>>();
  /** Every item id that reached `_bulk`, in arrival order, resends included. */
  readonly received: string[] = [];
  /** Status for a whole request (by 1-based request number), or undefined to process it. */
  requestStatus: (n: number) => number | undefined = () => undefined;
  /** Status for one item (by id, document and its 1-based attempt), or undefined to store it. */
  itemStatus: (id: string, doc: string, attempt: number) => number | undefined = () => undefined;
  bulkRequests = 0;
  private readonly attempts = new Map<string, number>();
  private readonly expectedAuth: string | undefined;

  constructor(auth?: { username: string; password: string }) {
    super();
    this.expectedAuth = auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined;
  }

  get endpoint(): string {
    return this.url;
  }

  count(): number {
    return [...this.docs.values()].reduce((s, m) => s + m.size, 0);
  }

  protected handle(r: ReceivedRequest): Answer {
    if (this.expectedAuth && r.headers.authorization !== this.expectedAuth) {
      return reply(401, { error: { type: 'security_exception', reason: 'unable to authenticate user [kestra_user]' }, status: 401 });
    }
    if (r.method === 'GET' && r.path === '/') return reply(200, { name: 'fake', cluster_name: 'logship-test', version: { number: '8.17.0' }, tagline: 'You Know, for Search' });
    if (r.method === 'POST' && r.path === '/_bulk') return this.bulk(r.body.toString('utf8'));
    const cat = /^\/_cat\/indices\/(.+)$/.exec(r.path);
    if (r.method === 'GET' && cat) {
      const prefix = decodeURIComponent(cat[1]!).replace(/\*$/, '');
      return reply(200, [...this.docs.keys()].filter((k) => k.startsWith(prefix)).map((index) => ({ index })));
    }
    if (r.method === 'DELETE') {
      if (!this.docs.delete(decodeURIComponent(r.path.slice(1)))) return reply(404, { error: { type: 'index_not_found_exception' }, status: 404 });
      return reply(200, { acknowledged: true });
    }
    return reply(400, { error: { type: 'unsupported', reason: `${r.method} ${r.path}` }, status: 400 });
  }

  private bulk(text: string): Answer {
    const n = ++this.bulkRequests;
    const whole = this.requestStatus(n);
    if (whole) return reply(whole, { error: { type: whole === 429 ? 'es_rejected_execution_exception' : 'internal_error', reason: 'scripted' }, status: whole });
    const lines = text.split('\n').filter(Boolean);
    const items: unknown[] = [];
    let errors = false;
    for (let i = 0; i < lines.length; i += 2) {
      const action = JSON.parse(lines[i]!) as Record<string, { _index: string; _id: string }>;
      const [op, meta] = Object.entries(action)[0]!;
      const doc = lines[i + 1]!;
      this.received.push(meta._id);
      const attempt = (this.attempts.get(meta._id) ?? 0) + 1;
      this.attempts.set(meta._id, attempt);
      let status = this.itemStatus(meta._id, doc, attempt);
      let error: unknown;
      if (status === undefined) {
        try {
          JSON.parse(doc);
        } catch {
          status = 400;
        }
      }
      if (status === undefined) {
        const index = this.docs.get(meta._index) ?? new Map<string, string>();
        this.docs.set(meta._index, index);
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
    return reply(200, { took: 1, errors, items });
  }
}

function reply(status: number, body: unknown): Answer {
  return { status, headers: { 'x-elastic-product': 'Elasticsearch' }, body: JSON.stringify(body) };
}

/** The bulk endpoint, started: the shape the CLI tests and the bench use. */
export type BulkServer = BulkEndpoint;

export async function startBulkServer(auth?: { username: string; password: string }): Promise<BulkServer> {
  return new BulkEndpoint(auth).start();
}
