import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OutputOptions } from '../config/types.js';
import { COMPRESSION_EXTENSION, CONTENT_ENCODING, createCompressor } from '../encode/compress.js';
import { partFormatFor, type PartEncoder, type PartFormat } from '../encode/part_format.js';
import { microsToTs } from '../plan/keyset.js';
import type { ShardSpec } from '../plan/shards.js';
import type { RowBatch } from '../source/row_batch.js';
import type { SourceTable } from '../source/table.js';
import { PartNamer, partitionSize, partitionStart } from './naming.js';
import type { ExporterShardResult, ObjectService, PartUpload, ShardWriter, WrittenPart } from './types.js';
import { kindOf, withKind } from '../run/error_kind.js';

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
  /** Event-time partition [start, end) of this part (-Infinity, Infinity when not partitioned). */
  partitionStart: number;
  partitionEnd: number;
}

/**
 * Splits one shard's rows into parts (rotating at maxLinesPerFile, maxBytesPerFile and event-time
 * partition edges), encodes and compresses them, and streams each part to the service. A part
 * counts only once the service committed it; `finish` then deletes parts left by earlier
 * attempts of the same shard, so a rerun leaves exactly its own parts.
 */
export class RotatingPartWriter implements ShardWriter {
  private format: PartFormat | null = null;
  private namer: PartNamer | null = null;
  private part: OpenPart | null = null;
  private partNumber = 0;
  private readonly written: WrittenPart[] = [];
  private rows = 0;

  constructor(
    private readonly exporterId: string,
    private readonly options: OutputOptions,
    private readonly service: ObjectService,
    private readonly shard: ShardSpec,
    private readonly table: SourceTable | undefined,
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
      });
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
  private withContext(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    if (e.message.startsWith(this.service.label)) return e;
    const wrapped = new Error(`${this.service.label}: writing ${this.part?.name ?? 'a part'} failed: ${e.message}`);
    wrapped.name = e.name;
    // Keep the kind: a refusal (403) wrapped here must still not be retried.
    return withKind(wrapped, kindOf(e));
  }

  private async writeRows(batch: RowBatch): Promise<void> {
    let i = 0;
    while (i < batch.count) {
      if (!this.part) await this.openPart(batch.tsMicros[i]!);
      const part = this.part!;
      const end = this.rowsThatFit(part, batch, i);
      if (end === i) {
        await this.commitPart();
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
  }

  async finish(): Promise<ExporterShardResult> {
    try {
      if (this.part) await this.commitPart();
    } catch (err) {
      throw this.withContext(err);
    }
    const keep = new Set(this.written.map((p) => p.name));
    const { namer } = await this.ready();
    const removed = await this.service.removeStale(namer.shardPrefixes(this.shard), keep, namer.shardPattern());
    return {
      exporterId: this.exporterId,
      rows: this.rows,
      bytes: this.written.reduce((s, p) => s + p.bytes, 0),
      parts: this.written,
      removed,
      deadLettered: 0,
    };
  }

  async abort(): Promise<void> {
    const part = this.part;
    this.part = null;
    if (!part) return;
    part.compressor.destroy();
    await part.flowing.catch(() => {});
    await part.upload.abort().catch(() => {});
  }

  /** Rows from `from` that still fit the current part: line cap, byte cap, same partition. */
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
      // Rows are not sorted within a shard: any row outside this part's partition closes it.
      for (let r = from; r < end; r++) {
        const ts = batch.tsMicros[r]!;
        if (ts >= part.partitionEnd || ts < part.partitionStart) return r;
      }
    }
    return end;
  }

  private async openPart(firstTs: number): Promise<void> {
    const { format, namer } = await this.ready();
    const g = namer.granularity;
    const pStart = g ? partitionStart(firstTs, g) : firstTs;
    const name = namer.name(++this.partNumber, pStart);
    const upload = await this.service.open(name, format.contentType, CONTENT_ENCODING[this.options.compression]);
    const compressor = createCompressor(this.options.compression, this.options.compressionLevel);
    const part: OpenPart = {
      name, upload, compressor, encoder: null as unknown as PartEncoder, rows: 0, rawBytes: 0, storedBytes: 0,
      flowing: Promise.resolve(),
      minTs: Infinity, maxTs: -Infinity,
      partitionStart: g ? pStart : -Infinity,
      partitionEnd: g ? pStart + partitionSize(g) : Infinity,
    };
    compressor.on('data', (c: Buffer) => (part.storedBytes += c.length));
    part.flowing = pipeline(compressor, upload.sink);
    part.flowing.catch(() => {}); // observed in push/commit; avoid an unhandled rejection meanwhile
    this.part = part;
    part.encoder = await format.open((bytes) => this.push(part, bytes));
  }

  private async push(part: OpenPart, bytes: Buffer): Promise<void> {
    if (!part.compressor.write(bytes)) {
      await Promise.race([once(part.compressor, 'drain'), part.flowing]);
    }
  }

  private async commitPart(): Promise<void> {
    const part = this.part!;
    const format = this.format!;
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
    part.compressor.end();
    await part.flowing;
    await part.upload.commit();
    this.written.push({ name: part.name, rows: part.rows, bytes: part.storedBytes, minTs: microsToTs(part.minTs), maxTs: microsToTs(part.maxTs) });
    this.part = null;
  }
}

/** ".ndjson.gz", ".json.zst", ".parquet": what is inside, then how it is compressed. */
export function partExtension(options: OutputOptions, formatExtension: string): string {
  return `${formatExtension}${COMPRESSION_EXTENSION[options.compression]}`;
}
