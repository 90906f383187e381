import type { RowBatch } from '../../source/row_batch.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from './types.js';

/**
 * A request whose body is a JSON array of events (Datadog, New Relic): each event is kept as
 * its JSON text, so a partial resend or a 413 halving re-joins texts instead of re-encoding.
 */
export class JsonItemsRequest implements DeliveryRequest {
  constructor(
    readonly items: string[],
    /** UTF-8 length of each item's JSON text. */
    readonly sizes: number[],
    readonly keys: string[],
    readonly tsMicros: number[],
  ) {}

  get count(): number {
    return this.items.length;
  }

  /** Bytes of the items joined into an array (`[a,b]`), before any envelope or compression. */
  get bytes(): number {
    let n = 2 + Math.max(0, this.items.length - 1);
    for (const s of this.sizes) n += s;
    return n;
  }

  /** `prefix[item,item,…]suffix` as one buffer. */
  body(prefix = '', suffix = ''): Buffer {
    return Buffer.from(`${prefix}[${this.items.join(',')}]${suffix}`);
  }

  subset(items: number[]): JsonItemsRequest {
    return new JsonItemsRequest(items.map((i) => this.items[i]!), items.map((i) => this.sizes[i]!), items.map((i) => this.keys[i]!), items.map((i) => this.tsMicros[i]!));
  }

  split(): JsonItemsRequest[] | null {
    if (this.count < 2) return null;
    const half = Math.ceil(this.count / 2);
    const all = Array.from({ length: this.count }, (_, i) => i);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  /** The dead-letter record keeps the event as the platform would have received it. */
  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: this.items[i]! };
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
  private items: string[] = [];
  private sizes: number[] = [];
  private keys: string[] = [];
  private ts: number[] = [];
  private len = 2;

  constructor(
    private readonly limits: JsonItemsLimits,
    private readonly encode: (batch: RowBatch, i: number) => EncodedEvent,
  ) {}

  get count(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.limits.maxItems || this.len + 1 + this.limits.maxItemBytes > this.limits.maxBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const e = this.encode(batch, i);
    if ('refused' in e) return e.refused;
    this.items.push(e.json);
    this.sizes.push(e.bytes);
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    this.len += e.bytes + (this.items.length > 1 ? 1 : 0);
    return null;
  }

  take(): JsonItemsRequest {
    const r = new JsonItemsRequest(this.items, this.sizes, this.keys, this.ts);
    this.items = [];
    this.sizes = [];
    this.keys = [];
    this.ts = [];
    this.len = 2;
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
