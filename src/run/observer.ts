import type { Bound } from '../core/keyset.js';
import type { DeliveryEvent } from '../sinks/delivery/types.js';
import type { ShardOutcome } from '../state/types.js';

/** What a run tells whoever watches it (metrics); every call is cheap and happens per shard or per request. */
export interface RunObserver {
  planned(rows: number): void;
  shardDone(outcome: ShardOutcome, seconds: number): void;
  offset(bound: Bound): void;
  /** A running shard read more rows: deltas since its attempt's previous progress message (every ~250 ms). */
  read?(rows: number, bytes: number): void;
  delivery(exporterId: string, event: DeliveryEvent): void;
  /** Distributed coordinator: the run's shards by state, at each look at the queue. */
  shardStates?(counts: ShardCounts): void;
  /** Distributed coordinator: a worker finished a shard of `rows` rows (the worker counts its exporters' rows and bytes). */
  shardRecorded?(rows: number): void;
  /** Distributed worker: its shard's exporter rows and bytes and its duration; the run's rows done are the coordinator's. */
  shardExported?(outcome: ShardOutcome, seconds: number): void;
}

export interface ShardCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
}
