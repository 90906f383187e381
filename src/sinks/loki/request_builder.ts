import zlib from 'node:zlib';
import snappy from 'snappyjs';
import type { RowBatch } from '../../source/row_batch.js';
import { attributeText, toEvent, type LogEvent } from '../delivery/event.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';
import { LABEL_NAME, MAX_LABEL_VALUE, type LabelRule, type LokiExporterConfig } from './config.js';
import { pushSchema, type PushEntry, type PushStream } from './push_proto.js';

/** Loki's `max_structured_metadata_size` default (64 KB). */
const MAX_METADATA_BYTES = 64 * 1024;

/** One entry of a push, with what a dead letter or a resend needs. */
interface Item {
  stream: string;
  entry: PushEntry;
  key: string;
  tsMicros: number;
  document: Buffer;
}

/** A push request: items grouped into streams when encoded, each stream's entries in read order. */
export class LokiRequest implements DeliveryRequest {
  readonly body: Buffer;
  readonly contentType: string;
  readonly contentEncoding: string | undefined;
  /** Earliest and latest entry time (µs), for ordering requests (waitsFor). */
  readonly minTsMicros: number;
  readonly maxTsMicros: number;

  constructor(readonly items: Item[], private readonly config: Pick<LokiExporterConfig, 'protocol' | 'compression'>) {
    const encoded = encode(items, config);
    this.body = encoded.body;
    this.contentType = encoded.contentType;
    this.contentEncoding = encoded.contentEncoding;
    let min = Infinity;
    let max = -Infinity;
    for (const it of items) {
      if (it.tsMicros < min) min = it.tsMicros;
      if (it.tsMicros > max) max = it.tsMicros;
    }
    this.minTsMicros = min;
    this.maxTsMicros = max;
  }

  get count(): number {
    return this.items.length;
  }

  get bytes(): number {
    return this.body.length;
  }

  subset(items: number[]): LokiRequest {
    return new LokiRequest(items.map((i) => this.items[i]!), this.config);
  }

  split(): LokiRequest[] | null {
    if (this.items.length < 2) return null;
    const half = Math.ceil(this.items.length / 2);
    return [new LokiRequest(this.items.slice(0, half), this.config), new LokiRequest(this.items.slice(half), this.config)];
  }

  describe(i: number): DeadLetterSubject {
    const it = this.items[i]!;
    return { key: it.key, tsMicros: it.tsMicros, document: it.document, extra: { stream: it.stream } };
  }
}

function groupStreams(items: Item[]): PushStream[] {
  const streams = new Map<string, PushEntry[]>();
  for (const it of items) {
    let entries = streams.get(it.stream);
    if (!entries) streams.set(it.stream, (entries = []));
    entries.push(it.entry);
  }
  return [...streams].map(([labels, entries]) => ({ labels, entries }));
}

function encode(items: Item[], config: Pick<LokiExporterConfig, 'protocol' | 'compression'>): { body: Buffer; contentType: string; contentEncoding?: string } {
  const streams = groupStreams(items);
  if (config.protocol === 'protobuf') {
    const raw = pushSchema().PushRequest.encode({ streams }).finish();
    return { body: Buffer.from(snappy.compress(raw)), contentType: 'application/x-protobuf' };
  }
  // Loki's JSON push: {"streams":[{"stream":{labels},"values":[["<ns>","line",{metadata}]]}]}
  const json = JSON.stringify({
    streams: streams.map((s) => ({
      stream: parseLabelString(s.labels),
      values: s.entries.map((e) => {
        const ns = `${e.timestamp.seconds}${String(e.timestamp.nanos).padStart(9, '0')}`;
        if (e.structuredMetadata.length === 0) return [ns, e.line];
        const meta: Record<string, string> = {};
        for (const p of e.structuredMetadata) meta[p.name] = p.value;
        return [ns, e.line, meta];
      }),
    })),
  });
  const body = Buffer.from(json);
  return config.compression === 'gzip'
    ? { body: zlib.gzipSync(body, { level: 1 }), contentType: 'application/json', contentEncoding: 'gzip' }
    : { body, contentType: 'application/json' };
}

/** `{a="x", b="y"}` back to a mapping (only ever our own rendering, so the escapes are known). */
function parseLabelString(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = JSON.parse(`"${m[2]!}"`) as string;
  return out;
}

/** A label value inside Loki's `{name="value"}` selector syntax (Go-quoted). */
function quote(v: string): string {
  return JSON.stringify(v);
}

const SANITIZE = /[^a-zA-Z0-9_]/g;

/**
 * Rows to push requests: labels make the stream, the line is the document (with the row key, so
 * no two rows are one line to Loki's dedupe) or the message, and every other field goes to
 * structured metadata. A request closes at `chunk` entries or `batchBytes`; a line over
 * `maxLineSize` (or labels/metadata over Loki's limits) is refused, so the core dead-letters it.
 */
export class LokiRequestBuilder implements RequestBuilder<LokiRequest> {
  private items: Item[] = [];
  private size = 0;
  private readonly labels: LabelRule[];
  private readonly labelFields: Set<string>;
  private readonly metadataNames = new Map<string, string>();

  constructor(private readonly config: LokiExporterConfig) {
    // Loki identifies a stream by its sorted label set: sort once so equal sets group together.
    this.labels = [...config.labels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.labelFields = new Set(config.labels.flatMap((l) => (l.field ? [l.field] : [])));
  }

  get count(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.config.chunk || this.size >= this.config.batchBytes;
  }

  /**
   * A request spans at most the out-of-order window: if Loki stored it and the answer was lost,
   * resending it must not put its first entries too far behind its last.
   */
  fits(batch: RowBatch, i: number): boolean {
    return this.items.length === 0 || batch.tsMicros[i]! - this.items[0]!.tsMicros <= this.config.outOfOrderWindowMs * 1000;
  }

  add(batch: RowBatch, i: number): string | null {
    const event = toEvent(batch, i, this.config);
    const stream = this.streamOf(event);
    if (typeof stream !== 'string') return stream.refused;
    const line = this.lineOf(event);
    const lineBytes = Buffer.byteLength(line);
    if (lineBytes > this.config.maxLineSize) return `line of ${lineBytes} bytes is over Loki's max_line_size (${this.config.maxLineSize} bytes)`;
    const structuredMetadata: { name: string; value: string }[] = [];
    let metaBytes = 0;
    for (const [k, v] of Object.entries(event.attributes)) {
      if (this.labelFields.has(k) || v === null || v === undefined) continue;
      const value = attributeText(v);
      const name = this.metadataName(k);
      metaBytes += name.length + Buffer.byteLength(value);
      structuredMetadata.push({ name, value });
    }
    if (metaBytes > MAX_METADATA_BYTES) return `structured metadata of ${metaBytes} bytes is over Loki's max_structured_metadata_size (${MAX_METADATA_BYTES} bytes)`;
    const micros = event.tsMicros;
    const seconds = Math.floor(micros / 1e6);
    const entry: PushEntry = { timestamp: { seconds, nanos: (micros - seconds * 1e6) * 1000 }, line, structuredMetadata };
    this.items.push({ stream, entry, key: event.key, tsMicros: micros, document: event.document });
    this.size += lineBytes + metaBytes + 16;
    return null;
  }

  take(): LokiRequest {
    const req = new LokiRequest(this.items, this.config);
    this.items = [];
    this.size = 0;
    return req;
  }

  private streamOf(event: LogEvent): string | { refused: string } {
    let s = '{';
    for (const l of this.labels) {
      const raw = l.literal ?? event.fields[l.field!];
      if (raw === undefined || raw === null || raw === '') continue; // Loki drops empty labels
      const value = attributeText(raw);
      if (value.length > MAX_LABEL_VALUE) return { refused: `label ${l.name} is ${value.length} characters, over Loki's max_label_value_length (${MAX_LABEL_VALUE})` };
      s += `${s.length > 1 ? ', ' : ''}${l.name}=${quote(value)}`;
    }
    if (s.length === 1) return { refused: 'no label has a value (Loki refuses a stream without labels)' };
    return `${s}}`;
  }

  private lineOf(event: LogEvent): string {
    if (this.config.lineFormat === 'message') return event.message;
    const text = event.document.toString('utf8');
    const keyMember = `${quote(this.config.keyAttribute)}:${quote(event.key)}`;
    if (!text.startsWith('{')) return text;
    return /^\{\s*\}$/.test(text) ? `{${keyMember}}` : `{${keyMember},${text.slice(1)}`;
  }

  private metadataName(field: string): string {
    let name = this.metadataNames.get(field);
    if (name === undefined) {
      name = LABEL_NAME.test(field) ? field : `_${field.replace(SANITIZE, '_')}`;
      this.metadataNames.set(field, name);
    }
    return name;
  }
}
