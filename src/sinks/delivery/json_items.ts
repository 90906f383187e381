import type { RowBatch } from '../../source/row_batch.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from './types.js';

/**
 * A request whose body is a JSON array of events (Datadog, New Relic): the events' JSON texts
 * sit back to back in one buffer, written there as they were encoded, so sending copies them
 * once and a partial resend or a 413 halving slices them instead of re-encoding.
 */
export class JsonItemsRequest implements DeliveryRequest {
  constructor(
    /** Item JSON texts back to back, no separators. */
    readonly data: Buffer,
    /** ends[i] = offset just past item i in `data`. */
    readonly ends: Int32Array,
    readonly keys: string[],
    readonly tsMicros: Float64Array,
  ) {}

  get count(): number {
    return this.ends.length;
  }

  /** Bytes of the items joined into an array (`[a,b]`), before any envelope or compression. */
  get bytes(): number {
    return (this.ends.length === 0 ? 0 : this.ends[this.ends.length - 1]!) + 1 + Math.max(1, this.ends.length);
  }

  item(i: number): Buffer {
    return this.data.subarray(i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }

  /** `prefix[item,item,…]suffix` as one buffer. */
  body(prefix = '', suffix = ''): Buffer {
    const head = Buffer.from(`${prefix}[`);
    const tail = Buffer.from(`]${suffix}`);
    const out = Buffer.allocUnsafe(head.length + this.bytes - 2 + tail.length);
    let at = head.copy(out, 0);
    for (let i = 0; i < this.count; i++) {
      if (i > 0) out[at++] = 0x2c; // ,
      at += this.data.copy(out, at, i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
    }
    tail.copy(out, at);
    return out;
  }

  subset(items: number[]): JsonItemsRequest {
    const parts = items.map((i) => this.item(i));
    const ends = new Int32Array(items.length);
    let at = 0;
    parts.forEach((p, j) => (ends[j] = at += p.length));
    return new JsonItemsRequest(Buffer.concat(parts, at), ends, items.map((i) => this.keys[i]!), Float64Array.from(items, (i) => this.tsMicros[i]!));
  }

  split(): JsonItemsRequest[] | null {
    if (this.count < 2) return null;
    const half = Math.ceil(this.count / 2);
    const all = Array.from({ length: this.count }, (_, i) => i);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  /** The dead-letter record keeps the event as the platform would have received it. */
  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: this.item(i) };
  }
}

/** One row as a platform event's JSON text, or the reason it can never be sent. */
export type EncodedEvent = { json: string; bytes: number } | { refused: string };

export interface JsonItemsLimits {
  /** Events per request (`chunk`, at most the platform's count cap). */
  maxItems: number;
  /** The platform's cap on the array's bytes (uncompressed). */
  maxBytes: number;
  /**
   * The largest single event the encoder lets through. A request is sent once the next event
   * might not fit, so a request never passes `maxBytes` and no event is ever held back
   * (the core's acknowledged prefix assumes a request holds every row read before it is sent).
   */
  maxItemBytes: number;
}

export class JsonItemsBuilder implements RequestBuilder<JsonItemsRequest> {
  private data = Buffer.allocUnsafe(256 * 1024);
  private len = 0;
  private ends: number[] = [];
  private keys: string[] = [];
  private ts: number[] = [];

  constructor(
    private readonly limits: JsonItemsLimits,
    private readonly encode: (batch: RowBatch, i: number) => EncodedEvent,
  ) {}

  get count(): number {
    return this.ends.length;
  }

  /** Array bytes so far: items, commas and brackets. */
  private get arrayBytes(): number {
    return this.len + 1 + Math.max(1, this.ends.length);
  }

  get full(): boolean {
    return this.ends.length >= this.limits.maxItems || this.arrayBytes + 1 + this.limits.maxItemBytes > this.limits.maxBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const e = this.encode(batch, i);
    if ('refused' in e) return e.refused;
    if (this.len + e.bytes > this.data.length) {
      const next = Buffer.allocUnsafe(Math.max(this.data.length * 2, this.len + e.bytes));
      this.data.copy(next, 0, 0, this.len);
      this.data = next;
    }
    this.len += this.data.write(e.json, this.len, 'utf8');
    this.ends.push(this.len);
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    return null;
  }

  take(): JsonItemsRequest {
    const r = new JsonItemsRequest(Buffer.from(this.data.subarray(0, this.len)), Int32Array.from(this.ends), this.keys, Float64Array.from(this.ts));
    this.len = 0;
    this.ends = [];
    this.keys = [];
    this.ts = [];
    return r;
  }
}

/**
 * The longest prefix of `s` that is at most `maxBytes` in UTF-8, cut on a character boundary
 * (never half a code point, which would arrive as U+FFFD).
 */
export function utf8Prefix(s: string, maxBytes: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= maxBytes) return s;
  let n = Math.max(0, maxBytes);
  while (n > 0 && (buf[n]! & 0xc0) === 0x80) n--;
  return buf.toString('utf8', 0, n);
}
