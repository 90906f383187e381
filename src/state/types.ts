import type { Bound } from '../plan/keyset.js';
import type { ShardSpec } from '../plan/shards.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import type { ExporterShardResult } from '../sinks/types.js';

/** Stored before any shard starts: a rerun after a crash finishes exactly this work. */
export interface RunManifest {
  runId: string;
  createdAt: string;
  window: { start: Bound; end: Bound };
  totalRows: number;
  shards: ShardSpec[];
}

export interface ShardOutcome {
  rows: number;
  deletedRows: number | null;
  exporters: ExporterShardResult[];
}

/** Per unfinished shard, per exporter: the in-shard acknowledged prefix (bounded-duplicates exporters). */
export type ShardAcks = Map<number, Record<string, InShardAck>>;

export interface StoredState {
  offset: Bound | null;
  run: RunManifest | null;
  done: Map<number, ShardOutcome>;
  acks: ShardAcks;
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
  endRun(runId: string, offset: Bound): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}
