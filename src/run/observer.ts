import type { Bound } from '../plan/keyset.js';
import type { DeliveryEvent } from '../sinks/delivery/types.js';
import type { ShardOutcome } from '../state/types.js';

/** What a run tells whoever watches it (metrics); every call is cheap and happens per shard or per request. */
export interface RunObserver {
  planned(rows: number): void;
  shardDone(outcome: ShardOutcome, seconds: number): void;
  offset(bound: Bound): void;
  delivery(exporterId: string, event: DeliveryEvent): void;
}
