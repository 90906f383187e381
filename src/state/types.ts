import type pg from 'pg';

import { type Bound } from '../core/keyset.js';

import type { ShardSpec } from '../core/keyset.js';

import type { InShardAck } from '../sinks/delivery/types.js';
import type { SnapshotPiece } from '../source/snapshots.js';
import type { ExporterShardResult } from '../sinks/types.js';

/** Stored before any shard starts: a rerun after a crash finishes exactly this work. */
export interface RunManifest {
  runId: string;
  createdAt: string;
  /** `late`: a catch-up of already exported ranges; its window is empty and the offset stays. */
  kind?: 'window' | 'late';
  window: { start: Bound; end: Bound };
  totalRows: number;
  shards: ShardSpec[];
  /** Snapshot taken before planning: it is the read of a window that planned no shards. */
  snapshot?: string;
}

export interface ShardOutcome {
  rows: number;
  deletedRows: number | null;
  exporters: ExporterShardResult[];
  /** The snapshot the shard was read in (pg_current_snapshot()), for the late-row catch-up. */
  snapshot?: string;
  /**
   * The read renewed its snapshot (source.maxSnapshotAge): from each `lo` on (the first row the
   * renewed read returned) it read in `snapshot`; before the first, in `snapshot` above. See
   * shardReadRanges.
   */
  renewals?: { lo: Bound; snapshot: string }[];
  /**
   * Set when an exporter resumed after a prefix acknowledged by an earlier attempt: the whole
   * shard's pieces, the skipped prefix with the snapshot(s) it was read in, the rest with this
   * attempt's (see shardPieces). shardReadRanges then records these instead of snapshot/renewals.
   */
  reads?: SnapshotPiece[];
  /** An unordered read passed source.maxSnapshotAge and the shard was read again, ordered. */
  restartedOrdered?: true;
  /** How long the shard's read transaction (and so its snapshot) stayed open, ms: the longest of its snapshots. */
  snapshotHeldMs?: number;
  /** Rows of the shard that went to the dead-letter file instead of the exporters. */
  badRows?: number;
  /** Distributed mode: a newer attempt held the shard, so this one recorded nothing and took its parts back. Never stored. */
  superseded?: true;
  /** The late-row check this shard's scan carried (ShardTaskInput.lateCheck): what it found, from its snapshot. Never stored. */
  lateCheck?: { until: string; hits: LateHit[]; checked: string[] };
}

/**
 * An exported (timestamp, key) range and the snapshot that covers it: every row of the range
 * visible to `snapshot` has been exported. Kept while the range is inside lateRows.horizon.
 */
export interface ReadRange {
  /** The shard id the range was first exported as; catch-ups are `${id}-late${n}`. */
  id: string;
  lo: Bound;
  hi: Bound;
  snapshot: string;
  /** Catch-ups done so far. */
  late: number;
}

/** Per unfinished shard, per exporter: the in-shard acknowledged prefix (bounded-duplicates exporters). */
export type ShardAcks = Map<number, Record<string, InShardAck>>;

/** One offsetKey's state as JSON (the file store's entries, the object store's document). */
export interface StateJson {
  offset: Bound | null;
  run: RunManifest | null;
  done: Record<string, ShardOutcome>;
  /** shard index → exporter id → in-shard acknowledged prefix. */
  acks?: Record<string, Record<string, InShardAck>>;
  /** Exported ranges inside the late-row horizon; absent in state written before late-row tracking. */
  reads?: ReadRange[];
  updatedAt: string;
}

/** Stored state, loaded. */
export interface StoredState {
  offset: Bound | null;
  run: RunManifest | null;
  done: Map<number, ShardOutcome>;
  acks: ShardAcks;
  /** Exported ranges inside the late-row horizon. */
  reads: ReadRange[];
  updatedAt: string | null;
}

export interface StateStore {
  readonly label: string;
  /** Creates storage if needed and takes the offsetKey's lock (one run per offsetKey at a time). */
  open(): Promise<void>;
  load(): Promise<StoredState>;
  beginRun(run: RunManifest): Promise<void>;
  /** Records a finished shard and the offset it lets the checkpoint reach, atomically. */
  shardDone(runId: string, index: number, outcome: ShardOutcome, offset: Bound): Promise<void>;
  /** Records how far one exporter got into an unfinished shard; forgotten when the run ends. */
  saveAck(runId: string, index: number, exporterId: string, ack: InShardAck): Promise<void>;
  /** Ends the run: the offset, and the ranges of the late-row horizon (replacing the stored ones). */
  endRun(runId: string, offset: Bound, reads: ReadRange[]): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
  /** Object stores count their requests (they are billed per request); others have none. */
  readonly requests?: { get: number; put: number };
}

/** A range that holds late rows, and their keys when few enough to be looked up (null: scan the range). */
export interface LateHit {
  range: ReadRange;
  keys: string[] | null;
}
