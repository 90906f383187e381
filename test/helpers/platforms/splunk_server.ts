import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** One event as HEC indexed it. */
export interface HecEvent {
  time: number | string;
  host?: string;
  source?: string;
  sourcetype?: string;
  index?: string;
  event: unknown;
  fields?: Record<string, unknown>;
  /** The event object's text as it arrived. */
  raw: string;
  channel: string | undefined;
}

const reply = (status: number, text: string, code: number, extra: Record<string, unknown> = {}): Answer => ({ status, body: JSON.stringify({ text, code, ...extra }) });

/**
 * A Splunk HTTP Event Collector as far as logship uses it, with HEC's own answers:
 * `Authorization: Splunk <token>` (missing 401 code 2, malformed 401 code 3, unknown 403 code 4),
 * concatenated JSON event objects on `/services/collector/event` (empty body: 400 "No data" code 5;
 * an event that does not parse: 400 code 6, one without `event`: 400 code 12, a blank one: code 13,
 * each with `invalid-event-number`, the events before it being indexed), `max_content_length`
 * (413), the health endpoint, and indexer acknowledgement: with `useAck` a data channel is
 * required (400 code 10), each accepted request gets a per-channel `ackId`, and
 * `/services/collector/ack` reports it acknowledged from the `ackAfterPolls`-th poll that asks
 * about it. `loseRequest` makes the indexers lose a request: its events are not kept and its
 * ackId is never acknowledged.
 */
export class SplunkServer extends PlatformEndpoint {
  readonly events: HecEvent[] = [];
  /** Events whose text matches are answered as unparsable (code 6), as HEC answers bad JSON. */
  poison: (raw: string) => boolean = () => false;
  /** Requests (by 1-based number of accepted event requests) the indexers lose under useAck. */
  loseRequest: (n: number) => boolean = () => false;
  /** Non-lost requests are acknowledged from this poll on; below the client's ackTimeout / ackPollInterval polls, so never mistaken for lost. */
  ackAfterPolls = 2;
  eventRequests = 0;
  ackPolls = 0;
  private readonly channels = new Map<string, { next: number; pending: Map<number, { polls: number; lost: boolean }> }>();

  constructor(
    readonly token: string,
    readonly options: { useAck?: boolean; maxContentLength?: number } = {},
  ) {
    super();
  }

  /** The row keys HEC indexed (the indexed field logship_key), in arrival order. */
  keys(keyField = 'logship_key'): string[] {
    return this.events.map((e) => String(e.fields?.[keyField]));
  }

  protected handle(r: ReceivedRequest): Answer {
    if (r.method === 'GET' && r.path === '/services/collector/health') return reply(200, 'HEC is healthy', 17);
    const auth = r.headers.authorization;
    if (!auth) return reply(401, 'Token is required', 2);
    const m = /^Splunk (.+)$/.exec(auth);
    if (!m) return reply(401, 'Invalid authorization', 3);
    if (m[1] !== this.token) return reply(403, 'Invalid token', 4);
    const channel = (r.headers['x-splunk-request-channel'] as string | undefined) ?? r.query.get('channel') ?? undefined;
    if (r.method === 'POST' && r.path === '/services/collector/ack') return this.serveAck(r, channel);
    if (r.method !== 'POST' || (r.path !== '/services/collector/event' && r.path !== '/services/collector')) return { status: 404, body: '' };
    const limit = this.options.maxContentLength ?? 1_000_000;
    if (r.body.length > limit) return reply(413, `Content-Length of ${r.body.length} too large (maximum is ${limit})`, 27);
    if (this.options.useAck && !channel) return reply(400, 'Data channel is missing', 10);
    const text = r.body.toString('utf8');
    if (text.trim().length === 0) return reply(400, 'No data', 5);
    const objects = splitObjects(text);
    const accepted: HecEvent[] = [];
    for (let n = 0; n < objects.length; n++) {
      const raw = objects[n]!;
      let parsed: Record<string, unknown>;
      try {
        if (this.poison(raw)) throw new Error('poison');
        parsed = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        this.events.push(...accepted);
        return reply(400, 'Invalid data format', 6, { 'invalid-event-number': n });
      }
      if (!('event' in parsed)) {
        this.events.push(...accepted);
        return reply(400, 'Event field is required', 12, { 'invalid-event-number': n });
      }
      if (parsed.event === '' || parsed.event === null) {
        this.events.push(...accepted);
        return reply(400, 'Event field cannot be blank', 13, { 'invalid-event-number': n });
      }
      accepted.push({ ...(parsed as Omit<HecEvent, 'raw' | 'channel'>), raw, channel });
    }
    const number = ++this.eventRequests;
    if (!this.options.useAck) {
      this.events.push(...accepted);
      return reply(200, 'Success', 0);
    }
    const state = this.channel(channel!);
    const ackId = state.next++;
    const lost = this.loseRequest(number);
    state.pending.set(ackId, { polls: 0, lost });
    if (!lost) this.events.push(...accepted);
    return reply(200, 'Success', 0, { ackId });
  }

  private serveAck(r: ReceivedRequest, channel: string | undefined): Answer {
    if (!this.options.useAck) return reply(400, 'ACK is disabled', 14);
    if (!channel) return reply(400, 'Data channel is missing', 10);
    this.ackPolls++;
    const asked = (JSON.parse(r.body.toString('utf8')) as { acks: number[] }).acks;
    const state = this.channel(channel);
    const acks: Record<string, boolean> = {};
    for (const id of asked) {
      const p = state.pending.get(id);
      if (!p) {
        acks[id] = false;
        continue;
      }
      p.polls++;
      acks[id] = !p.lost && p.polls >= this.ackAfterPolls;
      if (acks[id]) state.pending.delete(id);
    }
    return { status: 200, body: JSON.stringify({ acks }) };
  }

  private channel(id: string) {
    let c = this.channels.get(id);
    if (!c) this.channels.set(id, (c = { next: 0, pending: new Map() }));
    return c;
  }
}

/** HEC's body: JSON objects one after another, whitespace between them allowed. */
function splitObjects(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}') {
      if (--depth === 0) out.push(text.slice(start, i + 1));
    } else if (depth === 0 && !/\s/.test(c)) {
      out.push(text.slice(i)); // garbage between objects: HEC calls it an invalid event
      break;
    }
  }
  return out;
}
