import { CorruptRowError } from '../core/errors.js';
import { isUtf8 } from 'node:buffer';
import type { BadRowPolicy } from './bad_rows.js';

/**
 * Extra columns PostgreSQL sent with each row, as its text output (the Parquet columns, see
 * ParquetColumn.sql): value k of row i is bytes[starts[i * width + k], + lens[…]), NULL when the
 * length is -1. They are read from byte ranges, never turned into JS strings on the way.
 */
export class WireValues {
  constructor(
    readonly width: number,
    readonly bytes: Buffer,
    readonly starts: Int32Array,
    readonly lens: Int32Array,
  ) {}
}

/**
 * A run of rows in columnar form. `body` already holds NDJSON (each document followed by "\n"),
 * so the NDJSON encoder hands out sub-slices without copying, and no per-row objects exist.
 *
 * A batch read without documents (`documents` false: a Parquet-only run, whose values all come
 * as wire columns) has an empty body; its `ends` still count each row's size, the bytes of its
 * wire values, so size caps and progress keep measuring what is exported.
 */
export class RowBatch {
  constructor(
    readonly count: number,
    /** Documents, each terminated by "\n". */
    readonly body: Buffer,
    /** ends[i] is the offset just past row i's "\n". */
    readonly ends: Int32Array,
    readonly keyBytes: Buffer,
    readonly keyEnds: Int32Array,
    /** Event time of each row in microseconds since the epoch. */
    readonly tsMicros: Float64Array,
    /** Extra columns read with the rows, when the reader was asked for some. */
    readonly wire: WireValues | null = null,
    /** False when the rows were read without their documents (body is empty, see above). */
    readonly documents = true,
  ) {}

  start(i: number): number {
    return i === 0 ? 0 : this.ends[i - 1]!;
  }

  key(i: number): string {
    return this.keyBytes.toString('utf8', i === 0 ? 0 : this.keyEnds[i - 1]!, this.keyEnds[i]!);
  }

  /** Document i without its trailing newline. */
  doc(i: number): Buffer {
    if (!this.documents) throw new Error('this batch was read without documents (a Parquet-only run)');
    return this.body.subarray(this.start(i), this.ends[i]! - 1);
  }

  get bytes(): number {
    return this.count === 0 ? 0 : this.ends[this.count - 1]!;
  }
}

const NEWLINE = 0x0a;
const NO_BYTES = Buffer.alloc(0);

/** Accumulates rows into a RowBatch; grows its buffers geometrically, never per row. */
export class RowBatchBuilder {
  private body: Buffer;
  private bodyLen = 0;
  private keys: Buffer;
  private keysLen = 0;
  private ends: Int32Array;
  private keyEnds: Int32Array;
  private ts: Float64Array;
  private wireBytes: Buffer;
  private wireLen = 0;
  private wireStarts: Int32Array;
  private wireLens: Int32Array;
  private wireFilled = 0;
  count = 0;

  constructor(
    private readonly maxRows: number,
    private readonly maxBytes = 4 * 1024 * 1024,
    /** Where rows that fail the UTF-8 check go; null = fail naming the row. */
    private readonly badRows: BadRowPolicy | null = null,
    /** Extra (wire) columns per row: each row's add is followed by this many addWire calls. */
    private readonly wireWidth = 0,
    /**
     * The wire columns' names when rows come without documents (rows go in with addSized, and a
     * bad row is dead-lettered with its fields); null when every row has its document.
     */
    private readonly fieldNames: readonly string[] | null = null,
  ) {
    this.wireBytes = Buffer.allocUnsafe(wireWidth > 0 ? Math.min(maxBytes, 1 << 18) : 0);
    this.wireStarts = new Int32Array(maxRows * wireWidth);
    this.wireLens = new Int32Array(maxRows * wireWidth);
    this.body = Buffer.allocUnsafe(fieldNames ? 0 : Math.min(maxBytes, 1 << 20));
    this.keys = Buffer.allocUnsafe(Math.min(maxRows * 24, 1 << 20));
    this.ends = new Int32Array(maxRows);
    this.keyEnds = new Int32Array(maxRows);
    this.ts = new Float64Array(maxRows);
  }

  get full(): boolean {
    return this.count >= this.maxRows || this.bodyLen >= this.maxBytes;
  }

  add(src: Buffer, keyStart: number, keyEnd: number, tsMicros: number, bodyStart: number, bodyEnd: number): void {
    this.addFrom(src, keyStart, keyEnd, tsMicros, src, bodyStart, bodyEnd);
  }

  /** Like add, with the key and the document in different buffers. */
  addFrom(keySrc: Buffer, keyStart: number, keyEnd: number, tsMicros: number, bodySrc: Buffer, bodyStart: number, bodyEnd: number): void {
    const bodyNeed = bodyEnd - bodyStart + 1;
    if (this.bodyLen + bodyNeed > this.body.length) this.body = grow(this.body, this.bodyLen, this.bodyLen + bodyNeed);
    bodySrc.copy(this.body, this.bodyLen, bodyStart, bodyEnd);
    this.bodyLen += bodyNeed;
    this.body[this.bodyLen - 1] = NEWLINE;
    this.endRow(keySrc, keyStart, keyEnd, tsMicros);
  }

  /**
   * A row without its document (`fieldNames` set): `size` (its wire values' bytes) counts toward
   * the batch's byte cap and ends[] as a document's bytes would; its wire values follow.
   */
  addSized(keySrc: Buffer, keyStart: number, keyEnd: number, tsMicros: number, size: number): void {
    this.bodyLen += size;
    this.endRow(keySrc, keyStart, keyEnd, tsMicros);
  }

  /** Closes the row whose document (or size) is in: its key, its time and where it ends. */
  private endRow(keySrc: Buffer, keyStart: number, keyEnd: number, tsMicros: number): void {
    const keyNeed = keyEnd - keyStart;
    if (this.keysLen + keyNeed > this.keys.length) this.keys = grow(this.keys, this.keysLen, this.keysLen + keyNeed);
    copyBytes(keySrc, keyStart, keyEnd, this.keys, this.keysLen);
    this.keysLen += keyNeed;
    this.ends[this.count] = this.bodyLen;
    this.keyEnds[this.count] = this.keysLen;
    this.ts[this.count] = tsMicros;
    this.count++;
  }

  /** The next wire value of the row just added: src[start, start + len), or NULL when len < 0. */
  addWire(src: Buffer, start: number, len: number): void {
    const k = this.wireFilled++;
    if (len < 0) {
      this.wireStarts[k] = this.wireLen;
      this.wireLens[k] = -1;
      return;
    }
    if (this.wireLen + len > this.wireBytes.length) this.wireBytes = grow(this.wireBytes, this.wireLen, this.wireLen + len);
    copyBytes(src, start, start + len, this.wireBytes, this.wireLen);
    this.wireStarts[k] = this.wireLen;
    this.wireLens[k] = len;
    this.wireLen += len;
  }

  /** The simple path's entry: strings from a row-mode query. */
  addStrings(key: string, tsMicros: number, body: string): void {
    const bodyNeed = Buffer.byteLength(body) + 1;
    if (this.bodyLen + bodyNeed > this.body.length) this.body = grow(this.body, this.bodyLen, this.bodyLen + bodyNeed);
    this.bodyLen += this.body.write(body, this.bodyLen);
    this.body[this.bodyLen++] = NEWLINE;
    const keyNeed = Buffer.byteLength(key);
    if (this.keysLen + keyNeed > this.keys.length) this.keys = grow(this.keys, this.keysLen, this.keysLen + keyNeed);
    this.keysLen += this.keys.write(key, this.keysLen);
    this.ends[this.count] = this.bodyLen;
    this.keyEnds[this.count] = this.keysLen;
    this.ts[this.count] = tsMicros;
    this.count++;
  }

  /** Hands out the batch and starts a fresh one (the batch keeps its buffers). */
  take(): RowBatch {
    const documents = this.fieldNames === null;
    const batch = new RowBatch(
      this.count,
      documents ? this.body.subarray(0, this.bodyLen) : NO_BYTES,
      this.ends.slice(0, this.count),
      this.keys.subarray(0, this.keysLen),
      this.keyEnds.slice(0, this.count),
      this.ts.slice(0, this.count),
      this.wireWidth === 0 ? null : this.takeWire(),
      documents,
    );
    const checked = documents ? checkUtf8(batch, this.badRows) : checkFieldsUtf8(batch, this.badRows, this.fieldNames!);
    // Reuse the size the last batch needed, but not a one-off giant row's size.
    if (documents) this.body = Buffer.allocUnsafe(Math.max(1 << 16, Math.min(this.body.length, this.maxBytes + (1 << 16))));
    this.keys = Buffer.allocUnsafe(Math.max(1 << 12, Math.min(this.keys.length, 1 << 20)));
    this.bodyLen = 0;
    this.keysLen = 0;
    this.count = 0;
    return checked;
  }

  private takeWire(): WireValues {
    const n = this.count * this.wireWidth;
    if (this.wireFilled !== n) throw new Error(`row batch has ${this.wireFilled} wire values for ${this.count} rows of ${this.wireWidth}`);
    const wire = new WireValues(this.wireWidth, this.wireBytes.subarray(0, this.wireLen), this.wireStarts.slice(0, n), this.wireLens.slice(0, n));
    this.wireBytes = Buffer.allocUnsafe(Math.max(1 << 12, Math.min(this.wireBytes.length, this.maxBytes + (1 << 16))));
    this.wireLen = 0;
    this.wireFilled = 0;
    return wire;
  }
}

/**
 * src[start, end) into dst at `at` (which has the room). Short runs (keys: Kestra's are 22 bytes;
 * most wire values) go byte by byte: Buffer#copy makes a view per call, which costs more.
 */
function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): void {
  if (end - start < 32) for (let i = start; i < end; i++) dst[at++] = src[i]!;
  else src.copy(dst, at, start, end);
}

function grow(buf: Buffer, used: number, need: number): Buffer {
  const next = Buffer.allocUnsafe(Math.max(need, buf.length * 2));
  buf.copy(next, 0, 0, used);
  return next;
}

/**
 * A database in SQL_ASCII can hand out bytes that are not UTF-8. One isUtf8 pass over the whole
 * batch is the fast path; only a batch that fails it is scanned row by row, and its bad rows are
 * rejected (dead-lettered or failing the shard) and cut out of the batch.
 */
function checkUtf8(batch: RowBatch, policy: BadRowPolicy | null): RowBatch {
  if (isUtf8(batch.body) && isUtf8(batch.keyBytes)) return batch;
  const keep = new Uint8Array(batch.count);
  let kept = 0;
  for (let i = 0; i < batch.count; i++) {
    const key = batch.keyBytes.subarray(i === 0 ? 0 : batch.keyEnds[i - 1]!, batch.keyEnds[i]!);
    const keyOk = isUtf8(key);
    if (keyOk && isUtf8(batch.doc(i))) {
      keep[i] = 1;
      kept++;
      continue;
    }
    const reason = keyOk ? 'body is not valid UTF-8' : 'key is not valid UTF-8';
    if (!policy) throw new CorruptRowError(`row key=${JSON.stringify(key.toString('utf8'))}: ${reason}`);
    policy.reject({ key: Buffer.from(key), tsMicros: batch.tsMicros[i]!, reason, raw: Buffer.from(batch.doc(i)) });
  }
  if (kept === batch.count) return batch;
  // Rebuilt from the good rows; they all passed the check, so the policy is never consulted again.
  const wire = batch.wire;
  const b = new RowBatchBuilder(Math.max(1, kept), batch.bytes + 1, null, wire?.width ?? 0);
  for (let i = 0; i < batch.count; i++) {
    if (!keep[i]) continue;
    b.addFrom(batch.keyBytes, i === 0 ? 0 : batch.keyEnds[i - 1]!, batch.keyEnds[i]!, batch.tsMicros[i]!, batch.body, batch.start(i), batch.ends[i]! - 1);
    // Wire values come from the row's document or columns, which passed the check with it.
    if (wire) for (let k = i * wire.width; k < (i + 1) * wire.width; k++) b.addWire(wire.bytes, wire.starts[k]!, wire.lens[k]!);
  }
  return b.take();
}

/** Row i's wire values as (name, raw bytes) pairs, for a dead-letter record. */
function fieldsOf(wire: WireValues, i: number, names: readonly string[]): [string, Buffer | null][] {
  return names.map((name, k): [string, Buffer | null] => {
    const at = i * wire.width + k;
    const len = wire.lens[at]!;
    return [name, len < 0 ? null : Buffer.from(wire.bytes.subarray(wire.starts[at]!, wire.starts[at]! + len))];
  });
}

/**
 * checkUtf8 for a batch read without documents: what is exported is the key and the wire values,
 * so those are checked (one isUtf8 pass over each buffer; row by row only when one fails). A bad
 * row's dead-letter record carries its fields, as there is no document to keep.
 */
function checkFieldsUtf8(batch: RowBatch, policy: BadRowPolicy | null, names: readonly string[]): RowBatch {
  const wire = batch.wire!;
  if (isUtf8(wire.bytes) && isUtf8(batch.keyBytes)) return batch;
  const keep = new Uint8Array(batch.count);
  let kept = 0;
  for (let i = 0; i < batch.count; i++) {
    const key = batch.keyBytes.subarray(i === 0 ? 0 : batch.keyEnds[i - 1]!, batch.keyEnds[i]!);
    let reason = isUtf8(key) ? null : 'key is not valid UTF-8';
    for (let k = 0; reason === null && k < wire.width; k++) {
      const at = i * wire.width + k;
      const len = wire.lens[at]!;
      if (len > 0 && !isUtf8(wire.bytes.subarray(wire.starts[at]!, wire.starts[at]! + len))) reason = `field ${names[k]} is not valid UTF-8`;
    }
    if (reason === null) {
      keep[i] = 1;
      kept++;
      continue;
    }
    if (!policy) throw new CorruptRowError(`row key=${JSON.stringify(key.toString('utf8'))}: ${reason}`);
    policy.reject({ key: Buffer.from(key), tsMicros: batch.tsMicros[i]!, reason, raw: null, fields: fieldsOf(wire, i, names) });
  }
  if (kept === batch.count) return batch;
  const b = new RowBatchBuilder(Math.max(1, kept), batch.bytes + 1, null, wire.width, names);
  for (let i = 0; i < batch.count; i++) {
    if (!keep[i]) continue;
    b.addSized(batch.keyBytes, i === 0 ? 0 : batch.keyEnds[i - 1]!, batch.keyEnds[i]!, batch.tsMicros[i]!, batch.ends[i]! - batch.start(i));
    for (let k = i * wire.width; k < (i + 1) * wire.width; k++) b.addWire(wire.bytes, wire.starts[k]!, wire.lens[k]!);
  }
  return b.take();
}
