import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OutputOptions } from '../encode/options.js';
import { COMPRESSION_EXTENSION, CONTENT_ENCODING, createCompressor } from '../encode/compress.js';
import { partFormatFor } from '../encode/part_format.js';
import { type PartEncoder, type PartFormat } from '../encode/part_encoder.js';
import { microsToTs } from '../core/keyset.js';
import type { ShardSpec } from '../core/keyset.js';
import type { RowBatch } from '../source/row_batch.js';
import type { SourceTable } from '../source/table.js';
import { PartNamer, partitionSize, partitionStart } from './naming.js';
import type { AttemptFence } from './delivery/types.js';
import type { ExporterShardResult, ObjectService, PartUpload, ShardWriter, WrittenPart } from './types.js';
import { kindOf, withKind } from '../core/errors.js';

interface OpenPart {
  name: string;
  upload: PartUpload;
  compressor: Transform;
  encoder: PartEncoder;
  /** Settles when the compressed bytes have all reached the upload (or it failed). */
  flowing: Promise<void>;
  rows: number;
  rawBytes: number;
  storedBytes: number;
  minTs: number;
  maxTs: number;
  /** Key in the writer's open map: the partition start, or 0 when names are not partitioned. */
  partitionKey: number;
  /** Event-time partition [start, end) of this part (-Infinity, Infinity when not partitioned). */
  partitionStart: number;
  partitionEnd: number;
  /** For closing the least recently used part, and parts a whole batch did not touch. */
  lastUsed: number;
  lastBatch: number;
}

/**
 * Parts open at once per shard and exporter. Rows mostly arrive in time order, so two suffice
 * around a partition edge; the bound keeps memory (compressor state, Parquet row groups, upload
 * buffers) fixed when they do not.
 */
const MAX_OPEN_PARTS = 4;
/** Parts from this size (uncompressed) commit one at a time in the background; smaller ones up to MAX_PENDING_COMMITS at once. */
const SMALL_PART_BYTES = 1 << 20;
const MAX_PENDING_COMMITS = 64;

/**
 * Splits one shard's rows into parts (rotating at maxLinesPerFile, maxBytesPerFile and event-time
 * partition edges), encodes and compresses them, and streams each part to the service. A part
 * counts only once the service committed it; `finish` then deletes parts left by earlier
 * attempts of the same shard, so a rerun leaves exactly its own parts.
 */
export class RotatingPartWriter implements ShardWriter {
  private format: PartFormat | null = null;
  private namer: PartNamer | null = null;
  /**
   * Open parts by event-time partition start (one entry, key 0, when names are not partitioned).
   * A shard may span many partitions and its rows come unsorted, so a few parts stay open at once.
   */
  private readonly open = new Map<number, OpenPart>();
  /** The part the last rows went to: the common case is the next row going there too. */
  private current: OpenPart | null = null;
  private partNumber = 0;
  private batchNumber = 0;
  private uses = 0;
  private readonly written: WrittenPart[] = [];
  private readonly committing: Promise<void>[] = [];
  /** The tail of the last large part committed, settled or not (see commitPart). */
  private largeTail: Promise<void> | null = null;
  /** Partition starts this attempt wrote to: where a rerun must look for its earlier parts. */
  private readonly touched = new Set<number>();
  private rows = 0;

  constructor(
    private readonly exporterId: string,
    private readonly options: OutputOptions,
    private readonly service: ObjectService,
    private readonly shard: ShardSpec,
    private readonly table: SourceTable | undefined,
    /** Distributed mode: attempt-scoped names, and a fence check before each part becomes visible. */
    private readonly fence?: AttemptFence,
  ) {}

  /** The format loads on first use (Parquet pulls in its writer only when asked for). */
  private async ready(): Promise<{ format: PartFormat; namer: PartNamer }> {
    if (!this.format || !this.namer) {
      this.format = await partFormatFor(this.options, this.table);
      this.namer = new PartNamer(this.options.keyTemplate, {
        prefix: this.options.logFilePrefix,
        exporter: this.exporterId,
        shard: this.shard.id,
        ext: partExtension(this.options, this.format.extension),
      }, this.fence?.attempt ?? null);
    }
    return { format: this.format, namer: this.namer };
  }

  async write(batch: RowBatch): Promise<void> {
    try {
      await this.writeRows(batch);
    } catch (err) {
      throw this.withContext(err);
    }
  }

  /** Names the destination and object in errors that arrive raw through the byte pipeline. */
  private withContext(err: unknown, partName = this.current?.name): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    if (e.message.startsWith(this.service.label)) return e;
    const wrapped = new Error(`${this.service.label}: writing ${partName ?? 'a part'} failed: ${e.message}`);
    wrapped.name = e.name;
    // Keep the kind: a refusal (403) wrapped here must still not be retried.
    return withKind(wrapped, kindOf(e));
  }

  private async writeRows(batch: RowBatch): Promise<void> {
    const batchNumber = ++this.batchNumber;
    let i = 0;
    while (i < batch.count) {
      const part = await this.partFor(batch.tsMicros[i]!);
      part.lastBatch = batchNumber;
      const end = this.rowsThatFit(part, batch, i);
      if (end === i) {
        await this.commitPart(part);
        continue;
      }
      for (let r = i; r < end; r++) {
        const ts = batch.tsMicros[r]!;
        if (ts < part.minTs) part.minTs = ts;
        if (ts > part.maxTs) part.maxTs = ts;
      }
      part.rows += end - i;
      part.rawBytes += batch.ends[end - 1]! - batch.start(i);
      this.rows += end - i;
      await part.encoder.rows(batch, i, end);
      i = end;
    }
    // A partition that got no row in a whole batch is most likely finished (rows mostly arrive in
    // insertion order, which follows time): close it now rather than hold its buffers open.
    for (const part of [...this.open.values()]) if (part.lastBatch !== batchNumber) await this.commitPart(part);
  }

  /** The open part of the row's partition, opening one (and closing the least recently used) if needed. */
  private async partFor(ts: number): Promise<OpenPart> {
    const c = this.current;
    if (c && ts >= c.partitionStart && ts < c.partitionEnd) return c;
    const { namer } = await this.ready();
    const key = namer.granularity ? partitionStart(ts, namer.granularity) : 0;
    let part = this.open.get(key);
    if (!part) {
      if (this.open.size >= MAX_OPEN_PARTS) {
        let oldest: OpenPart | null = null;
        for (const p of this.open.values()) if (!oldest || p.lastUsed < oldest.lastUsed) oldest = p;
        await this.commitPart(oldest!);
      }
      part = await this.openPart(key);
    }
    part.lastUsed = ++this.uses;
    this.current = part;
    return part;
  }

  async finish(): Promise<ExporterShardResult> {
    try {
      for (const part of [...this.open.values()]) await this.commitPart(part);
      await this.settleCommits();
    } catch (err) {
      throw this.withContext(err);
    }
    const keep = new Set(this.written.map((p) => p.name));
    const { namer } = await this.ready();
    // A distributed attempt removes only earlier attempts' parts: a newer attempt may be the winner.
    const earlier = this.fence ? namer.shardPattern({ which: 'before', attempt: this.fence.attempt }) : namer.shardPattern();
    const removed = await this.service.removeStale(namer.shardPrefixes(this.shard, [...this.touched]), keep, earlier);
    return {
      exporterId: this.exporterId,
      rows: this.rows,
      bytes: this.written.reduce((s, p) => s + p.bytes, 0),
      parts: this.written,
      removed,
      deadLettered: 0,
    };
  }

  /** `cause`: what failed the shard; a full disk also takes back the parts this attempt finished. */
  async abort(cause?: unknown): Promise<void> {
    await Promise.allSettled(this.committing.splice(0));
    const parts = [...this.open.values()];
    this.open.clear();
    this.current = null;
    for (const part of parts) {
      part.compressor.destroy();
      await part.flowing.catch(() => {});
      await part.upload.abort().catch(() => {});
    }
    // A distributed attempt that does not finish (failed, stopped, or found stale) takes back the
    // parts it made visible: they carry its own attempt number, so no other attempt's are touched,
    // and a stale attempt leaves nothing that duplicates the winner's rows.
    if (this.fence && this.written.length > 0 && this.namer) {
      await this.service.removeStale(this.namer.shardPrefixes(this.shard, [...this.touched]), new Set(), this.namer.shardPattern({ which: 'only', attempt: this.fence.attempt }));
    } else if (this.namer && this.written.length > 0 && isDiskFull(cause)) {
      // The shard is retried: its finished parts would otherwise take the space its next attempt
      // needs until that attempt replaces them. Nothing refers to them (the shard is not done),
      // and the retry rewrites them all.
      await this.service.removeStale(this.namer.shardPrefixes(this.shard, [...this.touched]), new Set(), this.namer.shardPattern());
    }
  }

  /** Rows from `from` that still fit the part: line cap, byte cap, same partition. */
  private rowsThatFit(part: OpenPart, batch: RowBatch, from: number): number {
    const { maxLinesPerFile, maxBytesPerFile } = this.options;
    let end = Math.min(batch.count, from + (maxLinesPerFile - part.rows));
    const startOffset = batch.start(from);
    // The byte cap is on encoded (uncompressed) bytes; a single row larger than the cap still
    // gets a part of its own rather than failing the export.
    const budget = maxBytesPerFile - part.rawBytes;
    if (batch.ends[end - 1]! - startOffset > budget) {
      let r = from;
      while (r < end && batch.ends[r]! - startOffset <= budget) r++;
      end = part.rows === 0 && r === from ? from + 1 : r;
    }
    if (part.partitionEnd !== Infinity) {
      // Rows are not sorted within a shard: the first row of another partition ends this run.
      for (let r = from; r < end; r++) {
        const ts = batch.tsMicros[r]!;
        if (ts >= part.partitionEnd || ts < part.partitionStart) return r;
      }
    }
    return end;
  }

  private async openPart(key: number): Promise<OpenPart> {
    const { format, namer } = await this.ready();
    const g = namer.granularity;
    const name = namer.name(++this.partNumber, key);
    const upload = await this.service.open(name, format.contentType, CONTENT_ENCODING[this.options.compression]);
    const compressor = createCompressor(this.options.compression, this.options.compressionLevel);
    const part: OpenPart = {
      name, upload, compressor, encoder: null as unknown as PartEncoder, rows: 0, rawBytes: 0, storedBytes: 0,
      flowing: Promise.resolve(),
      minTs: Infinity, maxTs: -Infinity,
      partitionKey: key,
      partitionStart: g ? key : -Infinity,
      partitionEnd: g ? key + partitionSize(g) : Infinity,
      lastUsed: 0, lastBatch: 0,
    };
    compressor.on('data', (c: Buffer) => (part.storedBytes += c.length));
    part.flowing = pipeline(compressor, upload.sink);
    part.flowing.catch(() => {}); // observed in push/commit; avoid an unhandled rejection meanwhile
    this.open.set(key, part);
    if (g) this.touched.add(key);
    part.encoder = await format.open((bytes) => this.push(part, bytes));
    return part;
  }

  private async push(part: OpenPart, bytes: Buffer): Promise<void> {
    if (!part.compressor.write(bytes)) {
      await Promise.race([once(part.compressor, 'drain'), part.flowing]);
    }
  }

  private async commitPart(part: OpenPart): Promise<void> {
    const format = this.format!;
    this.current = part; // errors name this part
    await part.encoder.close();
    part.upload.finalMeta({
      exporterId: this.exporterId,
      shardId: this.shard.id,
      rows: part.rows,
      minTs: microsToTs(part.minTs),
      maxTs: microsToTs(part.maxTs),
      contentType: format.contentType,
      contentEncoding: CONTENT_ENCODING[this.options.compression],
    });
    if (this.fence) await this.confirmAttempt(part);
    part.compressor.end();
    const written: WrittenPart = { name: part.name, rows: part.rows, bytes: 0, minTs: microsToTs(part.minTs), maxTs: microsToTs(part.maxTs) };
    this.written.push(written);
    // A large part's tail (its last deflates and writes, then the fsync and rename, or the
    // upload's completion) runs while the next part fills: awaited here, it stalled the shard's
    // read at every rotation, and PostgreSQL with it. One large tail at a time (its compressor
    // and an object store's last chunk stay in memory meanwhile). A small part's bytes are all
    // written first, so that sparse partitions never hold more than MAX_OPEN_PARTS compressors,
    // and only its commit (fsync, request) overlaps. `finish` awaits every tail.
    const large = part.rawBytes >= SMALL_PART_BYTES;
    if (large) {
      if (this.largeTail) await this.largeTail;
    } else {
      await part.flowing;
    }
    this.open.delete(part.partitionKey);
    this.current = null;
    const tail = this.commitTail(part, written);
    tail.catch(() => {});
    this.committing.push(tail);
    if (large) this.largeTail = tail.catch(() => {});
    if (this.committing.length >= MAX_PENDING_COMMITS) await this.settleCommits();
  }

  private async commitTail(part: OpenPart, written: WrittenPart): Promise<void> {
    try {
      await part.flowing;
      written.bytes = part.storedBytes;
      await part.upload.commit();
    } catch (err) {
      throw this.withContext(err, part.name);
    }
  }

  /**
   * A distributed attempt confirms it still holds the shard before the part can become visible.
   * That is before its stream ends: an object store makes the object visible at the end of the
   * body (PutObject, CompleteMultipartUpload, the block list, the resumable upload's last chunk);
   * a file at the rename in commit, later still. Refused, the part is dropped unseen.
   */
  private async confirmAttempt(part: OpenPart): Promise<void> {
    try {
      await this.fence!.check();
    } catch (err) {
      this.open.delete(part.partitionKey);
      this.current = null;
      part.compressor.destroy();
      await part.flowing.catch(() => {});
      await part.upload.abort().catch(() => {});
      throw err;
    }
  }

  private async settleCommits(): Promise<void> {
    const pending = this.committing.splice(0);
    await Promise.all(pending);
  }
}

/** ENOSPC or EDQUOT, raw or in a message that wrapped it (withContext keeps the text, not the code). */
export function isDiskFull(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | null | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
    if (typeof e.message === 'string' && /\b(ENOSPC|EDQUOT)\b/.test(e.message)) return true;
  }
  return false;
}

/** ".ndjson.gz", ".json.zst", ".parquet": what is inside, then how it is compressed. */
export function partExtension(options: OutputOptions, formatExtension: string): string {
  return `${formatExtension}${COMPRESSION_EXTENSION[options.compression]}`;
}
