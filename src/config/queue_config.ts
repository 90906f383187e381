import { defaultShardTimeoutMs } from '../run/distributed/shard_timeout.js';
import type { QueueConfig } from '../state/options.js';
import { ConfigError } from '../core/errors.js';
import type { OptionReader } from '../core/options.js';
import { isoDurationMillis } from '../core/options.js';

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
