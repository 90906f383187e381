import pg from 'pg';
import { sendCancelRequest } from './cancel.js';
import { CopyOutQuery, submitCopyOut, type CopyPayloadSink } from './copy_out.js';
import { FailOnBadRow, type BadRowPolicy } from './bad_rows.js';
import { CorruptRowError } from '../core/errors.js';
import { RowBatchBuilder, type RowBatch } from './row_batch.js';

export interface CopyReadOptions {
  /** NULLs, non-UTF-8 bytes and rows over maxRowBytes go here; default: fail naming the row. */
  badRows?: BadRowPolicy;
  /** The document column is jsonb (a version byte precedes its text) rather than text. */
  jsonbBody?: boolean;
  /** Text columns the query selects after the document (RowBatch.wire), e.g. Parquet's. */
  wireColumns?: number;
  /**
   * The wire columns' names when the query selected no document (shardSelect's
   * `withoutDocument`: '' or NULL in its place). Rows then carry no document: a NULL there is a
   * NULL body, maxRowBytes applies to the sum of the wire values' bytes, UTF-8 is checked on the
   * key and those values, and a bad row is dead-lettered with its fields.
   */
  withoutDocument?: readonly string[];
  /**
   * The query also selects late-row candidates of earlier ranges (shardSelect's `late`): its last
   * column tags each tuple, and the late rows' keys go here instead of into the batches.
   */
  lateRows?: LateRowSink;
}

/** Receives the key bytes [start, end) of a late row of range `range` (start -1: a NULL key). */
export interface LateRowSink {
  add(range: number, keyBytes: Buffer, start: number, end: number): void;
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** PostgreSQL's binary timestamps count µs from 2000-01-01; ours count from 1970-01-01. */
const PG_EPOCH_US = 946_684_800_000_000;
const JSONB_VERSION = 1;
const HEADER_FIXED = SIGNATURE.length + 8; // flags int32 + extension length int32
const NO_BATCHES: RowBatch[] = [];

/**
 * The fast path: `COPY (query) TO STDOUT (FORMAT binary)` lets PostgreSQL produce the JSON text
 * and ship it length-prefixed, so no row is parsed into a JS object and no byte is unescaped.
 * The query must select (key as text, event time as timestamp/timestamptz, document as jsonb),
 * then `wireColumns` text columns.
 */
export async function* readWithCopy(client: pg.Client, selectSql: string, fetchSize: number, o: CopyReadOptions = {}): AsyncGenerator<RowBatch> {
  const copy = new CopyOutQuery(`COPY (${selectSql}) TO STDOUT (FORMAT binary)`, new CopyBinaryParser(fetchSize, o));
  submitCopyOut(client, copy);
  let completed = false;
  try {
    for (let batch = await copy.next(); batch; batch = await copy.next()) yield batch;
    completed = true;
  } finally {
    // The consumer stopped early (an exporter failed, or it was closed), or a row was corrupt.
    // COPY OUT cannot be stopped from the client side of the protocol, so cancel it on the
    // server and drop what is still in flight up to the resulting error: the connection is then
    // ready for the next query. On a lost connection there is nothing to cancel; the caller
    // discards the connection.
    if (!completed) await cancelCopy(client, copy).catch(() => {});
  }
}

/** How long a COPY may take to end after a CancelRequest before a session is used to cancel it. */
const CANCEL_REQUEST_WAIT_MS = 5000;

async function cancelCopy(client: pg.Client, copy: CopyOutQuery): Promise<void> {
  // Over already (its last rows were still unread): a cancel would only race the next statement.
  if (copy.ended) return copy.discard();
  // Reading resumes here: a backend blocked on a full socket does not act on a cancel until it can write again.
  const discarded = copy.discard();
  // First the protocol's CancelRequest, which takes no connection slot (a renewing read stops
  // its COPY this way every source.maxSnapshotAge); a session of our own only if that did not work.
  if (await sendCancelRequest(client).then(() => true, () => false)) {
    if (await settlesWithin(discarded, CANCEL_REQUEST_WAIT_MS)) return;
  }
  const pid = (client as unknown as { processID: number }).processID;
  // The session's own parameters, as pg resolved them: `ssl` there is what the session connected
  // with (tls.ts's settings after any sslmode=prefer fallback), so the canceller needs no second
  // pass through tls.ts and no second fallback.
  const params = (client as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters;
  const canceller = new pg.Client(params);
  canceller.on('error', () => {});
  try {
    await canceller.connect();
    await canceller.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch {
    // No session for the cancel (the role's or server's connection limit, say): the COPY is then
    // drained to its end below instead. Left paused, it would hold the connection for ever, and
    // the shard's ROLLBACK, queued behind it, would never run.
  } finally {
    await canceller.end().catch(() => {});
  }
  // 57014 query_canceled (or the COPY had just finished, or it ran to its end): either way the
  // connection is free.
  await discarded;
}

async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export class CopyBinaryParser implements CopyPayloadSink {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes needed before parsing can make progress; avoids re-concatenating a huge row per chunk. */
  private needed = 0;
  private headerDone = false;
  private finished = false;
  private readonly builder: RowBatchBuilder;
  private readonly out: RowBatch[] = [];
  private readonly badRows: BadRowPolicy;
  /** Bytes before the document's text: jsonb's version byte, or none for text. */
  private readonly bodySkip: number;
  private readonly wireWidth: number;
  private readonly fields: number;
  /** Where the current tuple's wire values start (-1 = NULL length), found before it is added. */
  private readonly wireAt: Int32Array;
  /** The current tuple's wire values' bytes, summed by scanWire. */
  private wireSize = 0;
  private readonly fieldNames: readonly string[] | null;
  private readonly lateRows: LateRowSink | null;

  constructor(fetchSize: number, o: CopyReadOptions = {}) {
    this.badRows = o.badRows ?? new FailOnBadRow();
    this.fieldNames = o.withoutDocument ?? null;
    // Without documents, the document's place holds '' (no version byte, whatever the column).
    this.bodySkip = o.jsonbBody === false || this.fieldNames ? 0 : 1;
    this.wireWidth = this.fieldNames?.length ?? o.wireColumns ?? 0;
    this.lateRows = o.lateRows ?? null;
    this.fields = 3 + this.wireWidth + (this.lateRows ? 1 : 0);
    this.wireAt = new Int32Array(this.wireWidth);
    this.builder = new RowBatchBuilder(fetchSize, undefined, this.badRows, this.wireWidth, this.fieldNames);
  }

  /** Parses a chunk; returns the batches it completed. */
  push(chunk: Buffer): RowBatch[] {
    this.pushRange(chunk, 0, chunk.length);
    return this.takeReady();
  }

  takeReady(): RowBatch[] {
    return this.out.length === 0 ? NO_BATCHES : this.out.splice(0);
  }

  /**
   * Parses bytes [start, end) of buf, which stay valid only during the call: whole tuples are
   * copied into the batch, and only a tuple cut by `end` is kept (copied) for the next call.
   */
  pushRange(buf: Buffer, start: number, end: number): void {
    let pos = start;
    // Finish a tuple carried over from earlier chunks by joining only the bytes it still needs
    // (a huge row accumulates in `pending` without being re-copied per chunk).
    while (this.pendingLen > 0) {
      const missing = this.needed - this.pendingLen;
      if (end - pos < missing) {
        if (pos < end) this.pending.push(Buffer.from(buf.subarray(pos, end)));
        this.pendingLen += end - pos;
        return;
      }
      const joined = Buffer.concat([...this.pending, buf.subarray(pos, pos + missing)], this.needed);
      pos += missing;
      const used = this.parse(joined, 0, joined.length);
      this.pending = used < joined.length ? [joined.subarray(used)] : [];
      this.pendingLen = joined.length - used;
    }
    const used = this.parse(buf, pos, end);
    if (used < end) {
      this.pending = [Buffer.from(buf.subarray(used, end))];
      this.pendingLen = end - used;
    }
  }

  end(): RowBatch | null {
    if (!this.finished) throw new CorruptRowError('COPY stream ended before its trailer: the server closed the stream mid-row');
    return this.builder.count > 0 ? this.builder.take() : null;
  }

  /** Parses whole tuples from buf[pos, len); returns where the unparsed bytes start. */
  private parse(buf: Buffer, pos: number, len: number): number {
    if (!this.headerDone) {
      const at = pos;
      if (len - at < HEADER_FIXED) return this.need(HEADER_FIXED, at);
      if (buf.compare(SIGNATURE, 0, SIGNATURE.length, at, at + SIGNATURE.length) !== 0) throw new CorruptRowError('COPY stream has no binary signature');
      const ext = buf.readInt32BE(at + SIGNATURE.length + 4);
      if (len - at < HEADER_FIXED + ext) return this.need(HEADER_FIXED + ext, at);
      pos = at + HEADER_FIXED + ext;
      this.headerDone = true;
    }
    while (true) {
      if (pos + 2 > len) {
        this.need(2, pos);
        break;
      }
      const fields = buf.readInt16BE(pos);
      if (fields === -1) {
        this.finished = true;
        return len;
      }
      if (fields !== this.fields) throw new CorruptRowError(`COPY tuple has ${fields} fields, expected ${this.fields}`);
      // key
      if (pos + 6 > len) {
        this.need(6, pos);
        break;
      }
      const keyLen = buf.readInt32BE(pos + 2);
      const keyStart = pos + 6;
      // A NULL key has no bytes (length -1): the timestamp follows at once.
      const tsLenAt = keyStart + Math.max(0, keyLen);
      if (tsLenAt + 12 > len) {
        this.need(tsLenAt + 12 - pos, pos);
        break;
      }
      const tsMicros = buf.readInt32BE(tsLenAt + 4) * 4294967296 + buf.readUInt32BE(tsLenAt + 8) + PG_EPOCH_US;
      const bodyLenAt = tsLenAt + 12;
      if (bodyLenAt + 4 > len) {
        this.need(bodyLenAt + 4 - pos, pos);
        break;
      }
      const bodyLen = buf.readInt32BE(bodyLenAt);
      const bodyStart = bodyLenAt + 4;
      let end = bodyStart + Math.max(0, bodyLen);
      if (end > len) {
        this.need(end - pos, pos);
        break;
      }
      if (this.wireWidth > 0) {
        end = this.scanWire(buf, end, len);
        if (end < 0) {
          this.need(-end - pos, pos);
          break;
        }
      }
      if (this.lateRows !== null) {
        // The tag: -1 the shard's own row, k >= 0 a late row of range k, NULL neither.
        if (end + 4 > len) {
          this.need(end + 4 - pos, pos);
          break;
        }
        const tagLen = buf.readInt32BE(end);
        if (tagLen >= 0 && end + 4 + tagLen > len) {
          this.need(end + 4 + tagLen - pos, pos);
          break;
        }
        const tag = tagLen === 4 ? buf.readInt32BE(end + 4) : -2;
        end += 4 + Math.max(0, tagLen);
        if (tag !== -1) {
          if (tag >= 0) this.lateRows.add(tag, buf, keyLen < 0 ? -1 : keyStart, keyStart + keyLen);
          pos = end;
          this.needed = 0;
          continue;
        }
      }
      if (this.fieldNames !== null) {
        if (keyLen < 0 || bodyLen < 0 || this.wireSize > this.badRows.maxRowBytes) this.rejectFields(buf, keyStart, keyLen, tsMicros, bodyLen);
        else {
          this.builder.addSized(buf, keyStart, keyStart + keyLen, tsMicros, this.wireSize);
          this.addWireValues(buf);
        }
      } else if (keyLen < 0 || bodyLen < 0 || bodyLen - this.bodySkip > this.badRows.maxRowBytes) {
        this.reject(buf, keyStart, keyLen, tsMicros, bodyStart, bodyLen);
      } else {
        if (this.bodySkip === 1 && buf[bodyStart] !== JSONB_VERSION) throw new CorruptRowError(`row key=${JSON.stringify(buf.toString('utf8', keyStart, keyStart + keyLen))}: unknown jsonb binary version ${buf[bodyStart]}`);
        this.builder.add(buf, keyStart, keyStart + keyLen, tsMicros, bodyStart + this.bodySkip, bodyStart + bodyLen);
        this.addWireValues(buf);
      }
      pos = end;
      this.needed = 0;
    }
    return pos;
  }

  /**
   * Finds the wire fields from `p` on (positions in wireAt); returns where the tuple ends, or
   * minus the position the buffer must reach when the tuple is cut.
   */
  private scanWire(buf: Buffer, p: number, len: number): number {
    let size = 0;
    for (let k = 0; k < this.wireWidth; k++) {
      if (p + 4 > len) return -(p + 4);
      const n = buf.readInt32BE(p);
      p += 4;
      this.wireAt[k] = n < 0 ? -1 : p;
      if (n > 0) {
        if (p + n > len) return -(p + n);
        p += n;
        size += n;
      }
    }
    this.wireSize = size;
    return p;
  }

  /** The just-added row's wire values (found by scanWire), then the batch out if it is full. */
  private addWireValues(buf: Buffer): void {
    for (let k = 0; k < this.wireWidth; k++) {
      const at = this.wireAt[k]!;
      this.builder.addWire(buf, at, at < 0 ? -1 : buf.readInt32BE(at - 4));
    }
    if (this.builder.full) this.out.push(this.builder.take());
  }

  /** A bad row read without its document: its record keeps the fields' raw bytes instead. */
  private rejectFields(buf: Buffer, keyStart: number, keyLen: number, tsMicros: number, bodyLen: number): void {
    const key = keyLen < 0 ? null : Buffer.from(buf.subarray(keyStart, keyStart + keyLen));
    const fields = this.fieldNames!.map((name, k): [string, Buffer | null] => {
      const at = this.wireAt[k]!;
      return [name, at < 0 ? null : Buffer.from(buf.subarray(at, at + buf.readInt32BE(at - 4)))];
    });
    const reason = keyLen < 0 ? 'key is NULL' : bodyLen < 0 ? 'body is NULL' : `fields are ${this.wireSize} bytes, over maxRowBytes (${this.badRows.maxRowBytes})`;
    this.badRows.reject({ key, tsMicros, reason, raw: null, fields });
  }

  private reject(buf: Buffer, keyStart: number, keyLen: number, tsMicros: number, bodyStart: number, bodyLen: number): void {
    const key = keyLen < 0 ? null : Buffer.from(buf.subarray(keyStart, keyStart + keyLen));
    const raw = bodyLen < 0 ? null : Buffer.from(buf.subarray(bodyStart + this.bodySkip, bodyStart + bodyLen));
    const reason = keyLen < 0 ? 'key is NULL' : bodyLen < 0 ? 'body is NULL' : `body is ${bodyLen - this.bodySkip} bytes, over maxRowBytes (${this.badRows.maxRowBytes})`;
    this.badRows.reject({ key, tsMicros, reason, raw });
  }

  private need(bytes: number, at: number): number {
    this.needed = bytes;
    return at;
  }
}
