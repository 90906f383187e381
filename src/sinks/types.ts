import type { Writable } from 'node:stream';
import type { RowBatch } from '../source/row_batch.js';
import type { ShardSpec } from '../core/keyset.js';
import type { SourceTable } from '../source/table.js';
import type { ShardDeliveryContext } from './delivery/types.js';

/** One file or object an exporter confirmed as completely written. */
export interface WrittenPart {
  name: string;
  rows: number;
  /** Bytes as stored (after compression). */
  bytes: number;
  minTs: string;
  maxTs: string;
}

export interface ExporterShardResult {
  exporterId: string;
  rows: number;
  bytes: number;
  parts: WrittenPart[];
  /** Stale parts of earlier attempts removed by this one. */
  removed: string[];
  deadLettered: number;
}

/** Writes one shard's rows to one destination. `finish` resolves only once the destination confirmed. */
export interface ShardWriter {
  write(batch: RowBatch): Promise<void>;
  finish(): Promise<ExporterShardResult>;
  /** Gives up on the shard; `cause` is what failed it (a full disk also takes back finished parts). */
  abort(cause?: unknown): Promise<void>;
}

export interface Exporter {
  readonly id: string;
  /** Fails fast with a one-line error when the destination is unusable (missing, no permission). */
  check(): Promise<void>;
  /**
   * `table` describes the source (Parquet derives its schema from it). `delivery` is given to
   * exporters with bounded-duplicates delivery: where to resume in the shard, how to acknowledge.
   */
  openShard(shard: ShardSpec, table?: SourceTable, delivery?: ShardDeliveryContext): ShardWriter;
  close(): Promise<void>;
}

export interface PartMeta {
  exporterId: string;
  shardId: string;
  rows: number;
  minTs: string;
  maxTs: string;
  contentType: string;
  contentEncoding: string | undefined;
}

/** A part being written: compressed bytes go to `sink`; it becomes visible only on commit. */
export interface PartUpload {
  readonly sink: Writable;
  /** The part's final description, given before `sink` ends (S3 sends small objects' metadata then). */
  finalMeta(meta: PartMeta): void;
  /** Resolves once the destination confirmed the complete part, after `sink` finished. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** The destination-specific half of a file-shaped exporter (Vector's "service"). */
export interface ObjectService {
  readonly label: string;
  check(): Promise<void>;
  open(name: string, contentType: string, contentEncoding: string | undefined): Promise<PartUpload>;
  /** Deletes objects under the prefixes whose names match `pattern` and are not in `keep`. */
  removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]>;
}
