import zlib from 'node:zlib';
import type { RowBatch } from '../../source/row_batch.js';
import { attributeText, KESTRA_FIELDS, toEvent, type EventMapping } from '../delivery/event.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';

/** What every event of one exporter shares, rendered once. */
export interface HecEventTemplate {
  source: string;
  sourcetype: string | undefined;
  index: string | undefined;
  host: string | undefined;
}

/** One POST to `/services/collector/event`: concatenated event objects, one per line. */
export class HecRequest implements DeliveryRequest {
  /** The body as sent: gzipped when compression is on. */
  readonly wire: Buffer;

  constructor(
    /** Uncompressed body; event i ends (with its newline) at ends[i]. */
    readonly body: Buffer,
    readonly ends: Int32Array,
    readonly keys: string[],
    readonly tsMicros: Float64Array,
    readonly gzip: boolean,
  ) {
    this.wire = gzip ? zlib.gzipSync(body, { level: 1 }) : body;
  }

  get count(): number {
    return this.ends.length;
  }

  get bytes(): number {
    return this.wire.length;
  }

  event(i: number): Buffer {
    return this.body.subarray(i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }

  subset(items: number[]): HecRequest {
    const parts = items.map((i) => this.event(i));
    const ends = new Int32Array(items.length);
    let at = 0;
    parts.forEach((p, j) => (ends[j] = at += p.length));
    return new HecRequest(Buffer.concat(parts, at), ends, items.map((i) => this.keys[i]!), Float64Array.from(items, (i) => this.tsMicros[i]!), this.gzip);
  }

  split(): HecRequest[] | null {
    if (this.count < 2) return null;
    const all = Array.from({ length: this.count }, (_, i) => i);
    const half = Math.ceil(this.count / 2);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    const e = this.event(i);
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: e.subarray(0, e.length - 1) };
  }
}

/**
 * HEC's `time` is epoch seconds; written with six decimals from the integer µs, so the event keeps
 * the source's exact microsecond (no float rounding on the way).
 */
export function hecTime(tsMicros: number): string {
  const seconds = Math.floor(tsMicros / 1e6);
  const micros = tsMicros - seconds * 1e6;
  return `${seconds}.${String(micros).padStart(6, '0')}`;
}

/**
 * Rows → HEC events within `chunk` events and `maxBytes` uncompressed bytes (HEC's
 * `max_content_length`; a request over it is refused whole with 413). An event larger than
 * `maxBytes` alone can never be accepted and is refused here, so the core dead-letters it.
 *
 * Event: `{time, host?, source, sourcetype?, index?, event, fields}`. `event` is the document as
 * PostgreSQL produced it when it is a JSON object whose message sits under `message` (Kestra's
 * table: no re-encoding), else `{message, …other fields}`. `fields` are HEC indexed fields
 * (string values only): `severity`, the Kestra fields and the row key.
 */
export class HecRequestBuilder implements RequestBuilder<HecRequest> {
  private body: Buffer;
  private len = 0;
  private ends: number[] = [];
  private keys: string[] = [];
  private ts: number[] = [];
  private readonly tail: string;
  /** The last row encoded by `fits`, reused by the `add` that follows it. */
  private cached: { batch: RowBatch; i: number; bytes: Buffer; key: string } | null = null;

  constructor(
    private readonly mapping: EventMapping,
    template: HecEventTemplate,
    private readonly maxEvents: number,
    private readonly maxBytes: number,
    private readonly gzip: boolean,
  ) {
    let tail = '';
    if (template.host !== undefined) tail += `,"host":${JSON.stringify(template.host)}`;
    tail += `,"source":${JSON.stringify(template.source)}`;
    if (template.sourcetype !== undefined) tail += `,"sourcetype":${JSON.stringify(template.sourcetype)}`;
    if (template.index !== undefined) tail += `,"index":${JSON.stringify(template.index)}`;
    this.tail = `${tail},"event":`;
    this.body = Buffer.allocUnsafe(Math.min(maxBytes + 1024, 4 * 1024 * 1024));
  }

  get count(): number {
    return this.ends.length;
  }

  get full(): boolean {
    return this.ends.length >= this.maxEvents || this.len >= this.maxBytes;
  }

  fits(batch: RowBatch, i: number): boolean {
    return this.len + this.encode(batch, i).bytes.length <= this.maxBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const { bytes, key } = this.encode(batch, i);
    this.cached = null;
    if (bytes.length > this.maxBytes) return `event of ${bytes.length} bytes exceeds the request limit maxBytes (${this.maxBytes}): HEC would refuse the whole request`;
    if (this.len + bytes.length > this.body.length) {
      const next = Buffer.allocUnsafe(Math.max(this.body.length * 2, this.len + bytes.length));
      this.body.copy(next, 0, 0, this.len);
      this.body = next;
    }
    this.len += bytes.copy(this.body, this.len);
    this.ends.push(this.len);
    this.keys.push(key);
    this.ts.push(batch.tsMicros[i]!);
    return null;
  }

  take(): HecRequest {
    const req = new HecRequest(Buffer.from(this.body.subarray(0, this.len)), Int32Array.from(this.ends), this.keys, Float64Array.from(this.ts), this.gzip);
    this.len = 0;
    this.ends = [];
    this.keys = [];
    this.ts = [];
    return req;
  }

  private encode(batch: RowBatch, i: number): { bytes: Buffer; key: string } {
    const c = this.cached;
    if (c !== null && c.batch === batch && c.i === i) return c;
    const e = toEvent(batch, i, this.mapping);
    const isObject = e.document[0] === 0x7b; // '{': toEvent parsed an object
    let event: string;
    if (isObject && this.mapping.messageField === 'message') event = e.document.toString('utf8');
    else if (isObject) {
      const { [this.mapping.keyAttribute]: _key, ...rest } = e.attributes;
      event = JSON.stringify({ message: e.message, ...rest });
    } else event = JSON.stringify(e.message);
    const fields: Record<string, string> = {};
    if (e.level !== undefined) fields.severity = e.level;
    for (const f of KESTRA_FIELDS) {
      const v = e.fields[f];
      if (v !== undefined && v !== null) fields[f] = attributeText(v);
    }
    fields[this.mapping.keyAttribute] = e.key;
    const text = `{"time":${hecTime(e.tsMicros)}${this.tail}${event},"fields":${JSON.stringify(fields)}}\n`;
    this.cached = { batch, i, bytes: Buffer.from(text), key: e.key };
    return this.cached;
  }
}
