import { ConfigError } from './errors.js';
import type { OptionReader } from './reader.js';
import { isoDurationMillis } from './units.js';

/** The pg-boss queue that distributed mode (`run --distributed`, `worker`) hands shards through. */
export interface QueueConfig {
  /** Database holding the queue; default: the source database. */
  url: string | undefined;
  /** Schema pg-boss creates and owns. */
  schema: string;
  /** A shard job not finished this long after a worker took it is retried (its worker is presumed dead). */
  shardTimeoutMs: number;
  /** How often an idle worker asks for a job, and the coordinator looks for finished shards. */
  pollIntervalMs: number;
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

function millis(r: OptionReader, key: string, fallbackMs: number, minMs: number): number {
  const raw = r.raw(key);
  if (raw === undefined || raw === null) return fallbackMs;
  const iso = r.duration(key, '');
  const ms = isoDurationMillis(iso);
  if (ms === undefined || ms < minMs) {
    throw new ConfigError(r.at(key), `must be a fixed-length duration of at least ${minMs / 1000} s (got ${JSON.stringify(iso)})`);
  }
  return ms;
}

export function parseQueue(r: OptionReader | undefined, rowsPerShard: number): QueueConfig {
  const fallback = { url: undefined, schema: 'logship_queue', shardTimeoutMs: defaultShardTimeoutMs(rowsPerShard), pollIntervalMs: 2000 };
  if (!r) return fallback;
  const url = r.optionalString('url');
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) throw new ConfigError(r.at('url'), 'must be a postgres:// or postgresql:// URL');
  const schema = r.string('schema', fallback.schema);
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new ConfigError(r.at('schema'), `must be a plain lower-case SQL identifier (letters, digits, underscore) (got ${JSON.stringify(schema)})`);
  // pg-boss counts expiry in whole seconds, and polls at most every half second.
  const shardTimeoutMs = millis(r, 'shardTimeout', fallback.shardTimeoutMs, 1000);
  const pollIntervalMs = millis(r, 'pollInterval', fallback.pollIntervalMs, 500);
  r.done();
  return { url, schema, shardTimeoutMs, pollIntervalMs };
}
