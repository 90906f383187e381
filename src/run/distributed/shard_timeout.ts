import type { Config } from '../../shard/config.js';

import type { ShardSpec } from '../../core/keyset.js';
import { formatCount } from '../../core/format.js';

/**
 * Shards whose expected export time at a conservative rate exceeds `queue.shardTimeout`: their
 * job would expire while a healthy worker still exports them, and be run again elsewhere
 * (fenced, so nothing is duplicated, but the work is wasted and may never finish). One line
 * naming the largest, so `plan --distributed` and the coordinator say the same thing.
 */
export function shardTimeoutWarning(config: Config, shards: ShardSpec[]): string | null {
  const timeoutMs = config.queue?.shardTimeoutMs;
  if (timeoutMs === undefined) return null;
  const expectedMs = (rows: number) => (rows / CONSERVATIVE_ROWS_PER_SEC) * 1000;
  const over = shards.filter((s) => expectedMs(s.estimatedRows) > timeoutMs);
  if (over.length === 0) return null;
  const largest = over.reduce((a, b) => (b.estimatedRows > a.estimatedRows ? b : a));
  const others = over.length > 1 ? ` (and ${over.length - 1} more)` : '';
  return `queue.shardTimeout: shard ${largest.index}${others} has ~${formatCount(largest.estimatedRows)} rows, about ${Math.ceil(expectedMs(largest.estimatedRows) / 1000)} s at a conservative ${formatCount(CONSERVATIVE_ROWS_PER_SEC)} rows/s, longer than the ${Math.round(timeoutMs / 1000)} s timeout: its job may expire while a worker still exports it and be run again; raise queue.shardTimeout or lower rowsPerShard`;
}

/** A pessimistic export rate (one thread, a slow destination): what shard timeouts are judged by. */
export const CONSERVATIVE_ROWS_PER_SEC = 1000;

/**
 * A shard of `rowsPerShard` rows at the conservative rate, and never under 15 minutes: an
 * expiry that is too short makes a healthy worker's shard run twice (harmless, fenced, but wasted).
 */
export function defaultShardTimeoutMs(rowsPerShard: number): number {
  return Math.max(15 * 60_000, (rowsPerShard / CONSERVATIVE_ROWS_PER_SEC) * 1000);
}
