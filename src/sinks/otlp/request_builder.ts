import zlib from 'node:zlib';
import type { HrTime } from '@opentelemetry/api';
import { SeverityNumber, type LogAttributes } from '@opentelemetry/api-logs';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { Level } from '../../source/options.js';
import type { RowBatch } from '../../source/row_batch.js';
import { toEvent, type EventMapping } from '../delivery/event.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';

/** The OTLP log data model's severity numbers (the first of each range). */
export const SEVERITY: Record<Level, SeverityNumber> = {
  TRACE: SeverityNumber.TRACE,
  DEBUG: SeverityNumber.DEBUG,
  INFO: SeverityNumber.INFO,
  WARN: SeverityNumber.WARN,
  ERROR: SeverityNumber.ERROR,
};

/** `serializeRequest` of the official OTLP serializers (protobuf or JSON) from @opentelemetry/otlp-transformer. */
export type Serialize = (records: ReadableLogRecord[]) => Uint8Array | undefined;

type Scope = ReadableLogRecord['instrumentationScope'];

/** One export request: the records as the SDK models them, encoded once with the official serializer. */
export class OtlpRequest implements DeliveryRequest {
  /** The encoded ExportLogsServiceRequest as sent (gzipped when compression is on). */
  readonly wire: Buffer;
  readonly encodedBytes: number;

  constructor(
    readonly records: ReadableLogRecord[],
    readonly keys: string[],
    readonly documents: Buffer[],
    private readonly serialize: Serialize,
    private readonly gzip: boolean,
  ) {
    const encoded = serialize(records) ?? new Uint8Array(0);
    const buf = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    this.encodedBytes = buf.length;
    this.wire = gzip ? zlib.gzipSync(buf, { level: 1 }) : buf;
  }

  get count(): number {
    return this.records.length;
  }

  get bytes(): number {
    return this.wire.length;
  }

  subset(items: number[]): OtlpRequest {
    return new OtlpRequest(items.map((i) => this.records[i]!), items.map((i) => this.keys[i]!), items.map((i) => this.documents[i]!), this.serialize, this.gzip);
  }

  split(): OtlpRequest[] | null {
    if (this.count < 2) return null;
    const all = Array.from({ length: this.count }, (_, i) => i);
    const half = Math.ceil(this.count / 2);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    const r = this.records[i]!;
    return { key: this.keys[i]!, tsMicros: r.hrTime[0] * 1e6 + r.hrTime[1] / 1000, document: this.documents[i]! };
  }
}

function hrTime(tsMicros: number): HrTime {
  const seconds = Math.floor(tsMicros / 1e6);
  return [seconds, (tsMicros - seconds * 1e6) * 1000];
}

const utf8 = (s: string) => Buffer.byteLength(s);

/**
 * Rows → OTLP LogRecords: body = the message, timeUnixNano = the exact source time (µs → ns),
 * severityNumber/Text from the level (TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17), attributes =
 * every other document field (the Kestra fields among them; objects and arrays as JSON text)
 * plus the row key. Requests stay within `chunk` records and `maxBytes` of encoded body; the size
 * of each record is bounded from above before it is added, so the bound holds without encoding twice.
 */
export class OtlpRequestBuilder implements RequestBuilder<OtlpRequest> {
  private records: ReadableLogRecord[] = [];
  private keys: string[] = [];
  private documents: Buffer[] = [];
  private bytes = 0;
  private cached: { batch: RowBatch; i: number; record: ReadableLogRecord; size: number; key: string; document: Buffer } | null = null;

  constructor(
    private readonly mapping: EventMapping,
    private readonly resource: Resource,
    private readonly scope: Scope,
    private readonly serialize: Serialize,
    private readonly json: boolean,
    private readonly maxEvents: number,
    private readonly maxBytes: number,
    private readonly gzip: boolean,
  ) {}

  get count(): number {
    return this.records.length;
  }

  get full(): boolean {
    return this.records.length >= this.maxEvents || this.bytes >= this.maxBytes;
  }

  fits(batch: RowBatch, i: number): boolean {
    return this.bytes + this.encode(batch, i).size <= this.maxBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const e = this.encode(batch, i);
    this.cached = null;
    if (e.size > this.maxBytes) return `log record of up to ${e.size} encoded bytes exceeds the request limit maxBytes (${this.maxBytes})`;
    this.records.push(e.record);
    this.keys.push(e.key);
    this.documents.push(e.document);
    this.bytes += e.size;
    return null;
  }

  take(): OtlpRequest {
    const req = new OtlpRequest(this.records, this.keys, this.documents, this.serialize, this.gzip);
    this.records = [];
    this.keys = [];
    this.documents = [];
    this.bytes = 0;
    return req;
  }

  private encode(batch: RowBatch, i: number) {
    const c = this.cached;
    if (c !== null && c.batch === batch && c.i === i) return c;
    const e = toEvent(batch, i, this.mapping);
    const attributes: LogAttributes = {};
    // Upper bound of the record's protobuf size: fixed fields, then per attribute its key, value
    // and at most 24 bytes of tags and lengths. JSON adds names and quotes: its bound is looser.
    const perAttribute = this.json ? 64 : 24;
    let size = (this.json ? 256 : 64) + (this.json ? utf8(JSON.stringify(e.message)) : utf8(e.message));
    for (const k in e.attributes) {
      if (k === this.mapping.levelField) continue; // carried as severity
      const v = e.attributes[k];
      if (v === null || v === undefined) continue;
      let value: string | number | boolean;
      if (typeof v === 'string') value = v;
      else if (typeof v === 'number' || typeof v === 'boolean') value = v;
      else value = JSON.stringify(v);
      attributes[k] = value;
      size += perAttribute + utf8(k) + (typeof value === 'string' ? (this.json ? utf8(JSON.stringify(value)) : utf8(value)) : 24);
    }
    const time = hrTime(e.tsMicros);
    const record: ReadableLogRecord = {
      hrTime: time,
      // Observed = when logship read the row; the event time is the source's own timestamp.
      hrTimeObserved: hrTime(Date.now() * 1000),
      severityNumber: e.level === undefined ? SeverityNumber.UNSPECIFIED : SEVERITY[e.level],
      severityText: e.level,
      body: e.message,
      resource: this.resource,
      instrumentationScope: this.scope,
      attributes,
      droppedAttributesCount: 0,
    };
    this.cached = { batch, i, record, size, key: e.key, document: e.document };
    return this.cached;
  }
}
