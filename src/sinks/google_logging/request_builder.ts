import type { RowBatch } from '../../source/row_batch.js';
import { attributeText, KESTRA_FIELDS, toEvent, type LogEvent } from '../delivery/event.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';
import { MAX_ENTRY_BYTES, MAX_REQUEST_BYTES, type GoogleLoggingExporterConfig } from './config.js';

/** google.protobuf.Value, as the Logging API's protobuf schema has jsonPayload (a Struct). */
export type ProtoValue =
  | { nullValue: 0 } | { numberValue: number } | { stringValue: string } | { boolValue: boolean }
  | { structValue: ProtoStruct } | { listValue: { values: ProtoValue[] } };
export interface ProtoStruct { fields: Record<string, ProtoValue> }

export interface LogEntry {
  insertId: string;
  timestamp: { seconds: number; nanos: number };
  severity: string;
  jsonPayload: ProtoStruct;
  labels: Record<string, string>;
}

interface Item { entry: LogEntry; key: string; tsMicros: number; document: Buffer; size: number }

/** One entries.write call's entries. `bytes` is their JSON size as estimated when built. */
export class WriteRequest implements DeliveryRequest {
  constructor(readonly items: Item[]) {}

  get count(): number {
    return this.items.length;
  }

  get bytes(): number {
    let n = 0;
    for (const it of this.items) n += it.size;
    return n;
  }

  get entries(): LogEntry[] {
    return this.items.map((it) => it.entry);
  }

  subset(items: number[]): WriteRequest {
    return new WriteRequest(items.map((i) => this.items[i]!));
  }

  split(): WriteRequest[] | null {
    if (this.items.length < 2) return null;
    const half = Math.ceil(this.items.length / 2);
    return [new WriteRequest(this.items.slice(0, half)), new WriteRequest(this.items.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    const it = this.items[i]!;
    return { key: it.key, tsMicros: it.tsMicros, document: it.document, extra: { insertId: it.key } };
  }
}

/** Cloud Logging's LogSeverity names; Kestra's TRACE has none of its own. */
const SEVERITY: Record<string, string> = { TRACE: 'DEBUG', DEBUG: 'DEBUG', INFO: 'INFO', WARN: 'WARNING', ERROR: 'ERROR' };

export function toValue(v: unknown): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  switch (typeof v) {
    case 'string': return { stringValue: v };
    case 'number': return { numberValue: v };
    case 'boolean': return { boolValue: v };
    case 'object':
      return Array.isArray(v) ? { listValue: { values: v.map(toValue) } } : { structValue: toStruct(v as Record<string, unknown>) };
    default: return { stringValue: String(v) };
  }
}

export function toStruct(o: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const k in o) fields[k] = toValue(o[k]);
  return { fields };
}

/**
 * Rows to entries.write requests: insertId is the row key and timestamp the log's own (to the
 * microsecond), so Cloud Logging's dedupe hides what a rerun resends; jsonPayload is the
 * document; the Kestra fields and the key are entry labels. A request closes at `chunk` entries
 * or near 10 MB; an entry over 256 KiB is refused (the core dead-letters it).
 */
export class WriteRequestBuilder implements RequestBuilder<WriteRequest> {
  private items: Item[] = [];
  private size = 0;
  private readonly fixedLabelBytes: number;

  constructor(private readonly config: GoogleLoggingExporterConfig) {
    this.fixedLabelBytes = JSON.stringify(config.labels).length;
  }

  get count(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.config.chunk || this.size >= MAX_REQUEST_BYTES - MAX_ENTRY_BYTES - 64 * 1024;
  }

  add(batch: RowBatch, i: number): string | null {
    const event = toEvent(batch, i, this.config);
    const labels = this.labelsOf(event);
    let labelBytes = this.fixedLabelBytes;
    for (const k in labels) labelBytes += k.length + labels[k]!.length + 6;
    // The entry as the API counts it, near enough: payload, labels, names and timestamp.
    const size = event.document.length + labelBytes + 160;
    if (size > MAX_ENTRY_BYTES) return `entry of about ${size} bytes is over Cloud Logging's LogEntry limit (${MAX_ENTRY_BYTES} bytes)`;
    const payload = event.fields;
    if (this.config.messageField !== 'message' && payload.message === undefined) payload.message = event.message;
    const micros = event.tsMicros;
    const seconds = Math.floor(micros / 1e6);
    const entry: LogEntry = {
      insertId: event.key,
      timestamp: { seconds, nanos: (micros - seconds * 1e6) * 1000 },
      severity: (event.level && SEVERITY[event.level]) || 'DEFAULT',
      jsonPayload: Object.keys(payload).length > 0 ? toStruct(payload) : { fields: { message: { stringValue: event.message } } },
      labels,
    };
    this.items.push({ entry, key: event.key, tsMicros: micros, document: event.document, size });
    this.size += size;
    return null;
  }

  take(): WriteRequest {
    const req = new WriteRequest(this.items);
    this.items = [];
    this.size = 0;
    return req;
  }

  private labelsOf(event: LogEvent): Record<string, string> {
    const labels: Record<string, string> = { ...this.config.labels };
    for (const f of KESTRA_FIELDS) {
      const v = event.fields[f];
      if (v !== undefined && v !== null) labels[f] = attributeText(v);
    }
    labels[this.config.keyAttribute] = event.key;
    return labels;
  }
}
