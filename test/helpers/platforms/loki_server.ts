import snappy from 'snappyjs';
import { pushSchema } from '../../../src/sinks/loki/push_proto.js';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** One entry as Loki stored it. */
export interface StoredEntry {
  /** Nanoseconds since the epoch, as a decimal string (Loki's precision). */
  ns: string;
  line: string;
  metadata: Record<string, string>;
}

export interface LokiServerOptions {
  /** Basic credentials, bearer token and tenant the server demands (none: open). */
  username?: string;
  password?: string;
  bearerToken?: string;
  tenantId?: string;
  /** `max_chunk_age / 2`: an entry this far behind its stream's newest is refused (default 1 h). */
  outOfOrderWindowMs?: number;
  /** `max_line_size` (default 256 KB). */
  maxLineSize?: number;
}

interface Entry { ns: bigint; line: string; metadata: Record<string, string> }

const NS_PER_MS = 1_000_000n;

/**
 * A Loki distributor + ingester on loopback, as far as a pusher can tell: `/loki/api/v1/push`
 * takes snappy-compressed protobuf (decoded with Loki's push.proto) or JSON (optionally gzipped);
 * it validates labels and line size, then appends per stream with Loki's unordered-writes rules,
 * in the ingester's order: an entry identical to the stream's last appended line is dropped; an
 * entry more than the window behind the stream's newest is refused ("entry too far behind"), even
 * if Loki holds it already; an entry identical in timestamp and line to a stored one is dropped. A push
 * with refused entries stores the others and answers 400 naming the last refusal and a count,
 * exactly as Loki does.
 */
export class LokiServer extends PlatformEndpoint {
  /** Stream (canonical label string) → entries in arrival order. */
  readonly streams = new Map<string, Entry[]>();
  private readonly seen = new Map<string, Set<string>>();
  private readonly newest = new Map<string, bigint>();
  private readonly lastLine = new Map<string, Entry>();
  /** Entries received, duplicates included (what a crash made the exporter resend). */
  received = 0;
  droppedDuplicates = 0;
  refusedTooFarBehind = 0;
  /** Refuses an entry (by its key) once with "entry too far behind", storing the rest of the push: a partial failure. */
  refuseOnce: (key: string) => boolean = () => false;
  private readonly refused = new Set<string>();
  private readonly windowNs: bigint;
  private readonly maxLineSize: number;

  constructor(private readonly options: LokiServerOptions = {}) {
    super();
    this.windowNs = BigInt(options.outOfOrderWindowMs ?? 3_600_000) * NS_PER_MS;
    this.maxLineSize = options.maxLineSize ?? 256 * 1024;
  }

  /** Every stored entry with its stream. */
  entries(): { stream: string; entry: StoredEntry }[] {
    const out: { stream: string; entry: StoredEntry }[] = [];
    for (const [stream, list] of this.streams) for (const e of list) out.push({ stream, entry: { ns: e.ns.toString(), line: e.line, metadata: e.metadata } });
    return out;
  }

  protected handle(r: ReceivedRequest): Answer {
    if (r.path !== '/loki/api/v1/push') return { status: 404, body: '404 page not found\n' };
    if (r.method !== 'POST') return { status: 405, body: 'method not allowed\n' };
    const auth = this.authenticate(r);
    if (auth) return auth;
    let streams: { labels: Record<string, string>; entries: Entry[] }[];
    try {
      streams = this.decode(r);
    } catch (err) {
      return { status: 400, body: `${(err as Error).message}\n` };
    }
    let lastError = '';
    let ignored = 0;
    let total = 0;
    for (const s of streams) {
      const names = Object.keys(s.labels).sort();
      if (names.length === 0) return { status: 400, body: 'error at least one label pair is required per stream\n' };
      const stream = `{${names.map((n) => `${n}=${JSON.stringify(s.labels[n])}`).join(', ')}}`;
      for (const e of s.entries) {
        total++;
        this.received++;
        if (Buffer.byteLength(e.line) > this.maxLineSize) {
          ignored++;
          lastError = `max entry size '${this.maxLineSize}' bytes exceeded for stream '${stream}' while adding an entry with length '${Buffer.byteLength(e.line)}' bytes`;
          continue;
        }
        // The ingester first drops an entry identical to the stream's last appended one.
        const last = this.lastLine.get(stream);
        if (last && last.ns === e.ns && last.line === e.line) {
          this.droppedDuplicates++;
          continue;
        }
        const key = e.metadata.logship_key ?? '';
        const newest = this.newest.get(stream) ?? -1n;
        const tooFarBehind = newest >= 0n && e.ns < newest - this.windowNs;
        if (tooFarBehind || (this.refuseOnce(key) && !this.refused.has(key) && this.refused.add(key))) {
          if (tooFarBehind) this.refusedTooFarBehind++;
          ignored++;
          const oldest = newest - this.windowNs;
          lastError = `entry with timestamp ${nsToIso(e.ns)} ignored, reason: 'entry too far behind, entry timestamp is: ${nsToIso(e.ns)}, oldest acceptable timestamp is: ${nsToIso(oldest < 0n ? 0n : oldest)}' for stream: ${stream}`;
          continue;
        }
        const id = `${e.ns}\u0000${e.line}`;
        let seen = this.seen.get(stream);
        if (!seen) this.seen.set(stream, (seen = new Set()));
        if (seen.has(id)) {
          this.droppedDuplicates++;
          continue;
        }
        seen.add(id);
        let list = this.streams.get(stream);
        if (!list) this.streams.set(stream, (list = []));
        list.push(e);
        this.lastLine.set(stream, e);
        if (e.ns > newest) this.newest.set(stream, e.ns);
      }
    }
    if (ignored > 0) return { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${lastError},\ntotal ignored: ${ignored} out of ${total}\n` };
    return { status: 204 };
  }

  private authenticate(r: ReceivedRequest): Answer | null {
    const o = this.options;
    if (o.tenantId !== undefined && r.headers['x-scope-orgid'] !== o.tenantId) return { status: 401, body: 'no org id\n' };
    const auth = r.headers.authorization ?? '';
    if (o.username !== undefined && auth !== `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`) return { status: 401, body: 'invalid credentials\n' };
    if (o.bearerToken !== undefined && auth !== `Bearer ${o.bearerToken}`) return { status: 401, body: 'invalid token\n' };
    return null;
  }

  private decode(r: ReceivedRequest): { labels: Record<string, string>; entries: Entry[] }[] {
    const type = String(r.headers['content-type'] ?? '');
    if (type.startsWith('application/x-protobuf')) {
      const raw = Buffer.from(snappy.uncompress(new Uint8Array(r.body)));
      const msg = pushSchema().PushRequest.decode(raw) as unknown as { streams: { labels: string; entries: { timestamp: { seconds: { toString(): string }; nanos: number }; line: string; structuredMetadata: { name: string; value: string }[] }[] }[] };
      return msg.streams.map((s) => ({
        labels: parseSelector(s.labels),
        entries: s.entries.map((e) => ({
          ns: BigInt(e.timestamp.seconds.toString()) * 1_000_000_000n + BigInt(e.timestamp.nanos),
          line: e.line,
          metadata: Object.fromEntries(e.structuredMetadata.map((p) => [p.name, p.value])),
        })),
      }));
    }
    if (type.startsWith('application/json')) {
      const body = JSON.parse(r.body.toString('utf8')) as { streams: { stream: Record<string, string>; values: [string, string, Record<string, string>?][] }[] };
      return body.streams.map((s) => ({
        labels: s.stream,
        entries: s.values.map(([ns, line, metadata]) => {
          if (!/^\d+$/.test(ns)) throw new Error(`loghttp.PushRequest.Streams: timestamp must be a string of nanoseconds (got ${ns})`);
          return { ns: BigInt(ns), line, metadata: metadata ?? {} };
        }),
      }));
    }
    throw new Error(`unsupported Content-Type ${JSON.stringify(type)}`);
  }
}

/** Loki's label selector syntax, `{a="x", b="y"}` with Go-quoted values. */
function parseSelector(s: string): Record<string, string> {
  if (!/^\{.*\}$/.test(s)) throw new Error(`error parsing labels ${JSON.stringify(s)}`);
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = JSON.parse(`"${m[2]!}"`) as string;
  return out;
}

function nsToIso(ns: bigint): string {
  const ms = ns / NS_PER_MS;
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}
