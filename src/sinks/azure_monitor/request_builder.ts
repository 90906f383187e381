import { microsToTs } from '../../core/keyset.js';
import type { RowBatch } from '../../source/row_batch.js';
import { levelOf, type EventMapping } from '../delivery/event.js';
import { MAX_CALL_BYTES } from './config.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';

const OPEN_BRACE = 0x7b;

/** A DCR stream row: `TimeGenerated` plus the document's fields as columns. */
export type StreamRow = Record<string, unknown>;

/** Application Insights' SeverityLevel, the convention Azure Monitor tables use for levels. */
const SEVERITY: Record<string, number> = { TRACE: 0, DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 };

/**
 * One row as a DCR stream expects it: the document's fields under their own names (the Kestra
 * fields, `timestamp`, `level`, `message`), `TimeGenerated` with the exact µs event time, the
 * row key under `keyAttribute` and `SeverityLevel` from the level. A document that is not a JSON
 * object becomes the message.
 */
export function toStreamRow(batch: RowBatch, i: number, mapping: EventMapping): StreamRow {
  const text = batch.doc(i).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  const row: StreamRow = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as StreamRow) : { [mapping.messageField]: typeof parsed === 'string' ? parsed : text };
  row.TimeGenerated = microsToTs(batch.tsMicros[i]!);
  row[mapping.keyAttribute] = batch.key(i);
  const level = levelOf(row[mapping.levelField]);
  if (level !== undefined) row.SeverityLevel = SEVERITY[level];
  return row;
}

/** One Logs Ingestion call's worth of rows, kept as objects: the SDK serialises and gzips them itself. */
export class LogsRequest implements DeliveryRequest {
  constructor(
    readonly logs: StreamRow[],
    readonly keys: string[],
    readonly tsMicros: Float64Array,
    /** JSON bytes of the array (before the SDK's gzip), bounded from above from the documents' text. */
    readonly bytes: number,
  ) {}

  get count(): number {
    return this.logs.length;
  }

  subset(items: number[]): LogsRequest {
    const logs = items.map((i) => this.logs[i]!);
    const bytes = logs.reduce((n, l) => n + Buffer.byteLength(JSON.stringify(l)) + 1, 1);
    return new LogsRequest(logs, items.map((i) => this.keys[i]!), Float64Array.from(items, (i) => this.tsMicros[i]!), bytes);
  }

  split(): LogsRequest[] | null {
    if (this.count < 2) return null;
    const all = Array.from({ length: this.count }, (_, i) => i);
    const half = Math.ceil(this.count / 2);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: JSON.stringify(this.logs[i]) };
  }

  /** Item positions of rows the SDK reports back (it hands back the very objects it was given). */
  positionsOf(failed: readonly unknown[]): number[] {
    const at = new Map<unknown, number>();
    this.logs.forEach((l, i) => at.set(l, i));
    const out: number[] = [];
    for (const f of failed) {
      const i = at.get(f);
      if (i !== undefined) out.push(i);
    }
    return out.sort((a, b) => a - b);
  }
}

/**
 * Rows → requests of at most `chunk` rows and about `maxBytes` of JSON. The cap is soft by one
 * row (a row is added before the request is known to be full, and the core acknowledges rows in
 * read order); the SDK still cuts every HTTP call below 1,000,000 bytes, and reports the rows of
 * a failed call so only those are resent. A row over one call's limit (or `maxBytes`) can never
 * be accepted and is refused (dead-lettered).
 */
export class LogsRequestBuilder implements RequestBuilder<LogsRequest> {
  private logs: StreamRow[] = [];
  private keys: string[] = [];
  private ts: number[] = [];
  /** `[`, `]` and the commas, plus each row's JSON. */
  private bytes = 1;
  private lastRowBytes = 0;

  /** `,"TimeGenerated":"…27…","KEY":"","SeverityLevel":0` around the document, and the comma. */
  private readonly addedBytes: number;

  constructor(
    private readonly maxRows: number,
    private readonly maxBytes: number,
    private readonly mapping: EventMapping,
  ) {
    this.addedBytes = Buffer.byteLength(JSON.stringify({ TimeGenerated: '2026-01-01T00:00:00.000000Z', [mapping.keyAttribute]: '', SeverityLevel: 0 })) + 1;
  }

  get count(): number {
    return this.logs.length;
  }

  get full(): boolean {
    return this.logs.length >= this.maxRows || this.bytes + this.lastRowBytes > this.maxBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const row = toStreamRow(batch, i, this.mapping);
    const cap = Math.min(this.maxBytes, MAX_CALL_BYTES);
    // The SDK serialises each row twice already: size it from the document's text instead of a
    // third time. jsonb text has a space after every separator, so this bounds the row's JSON from
    // above; near the cap (and for documents that are not objects) the exact size decides.
    const docStart = batch.start(i);
    const keyBytes = batch.keyEnds[i]! - (i === 0 ? 0 : batch.keyEnds[i - 1]!);
    let size = batch.ends[i]! - docStart + this.addedBytes + keyBytes;
    if (size * 2 > cap || batch.body[docStart] !== OPEN_BRACE) size = Buffer.byteLength(JSON.stringify(row)) + 1;
    if (size + 1 > cap) return `row is ${size - 1} bytes as JSON, over the ${cap} bytes ${cap === MAX_CALL_BYTES ? 'one Logs Ingestion call may carry' : 'of maxRequestBytes'}`;
    this.logs.push(row);
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    this.bytes += size;
    this.lastRowBytes = size;
    return null;
  }

  take(): LogsRequest {
    const request = new LogsRequest(this.logs, this.keys, Float64Array.from(this.ts), this.bytes);
    this.logs = [];
    this.keys = [];
    this.ts = [];
    this.bytes = 1;
    this.lastRowBytes = 0;
    return request;
  }
}
