import { ConfigError } from '../core/errors.js';
import { quote, type OptionReader } from '../core/options.js';
import type { ObjectStoreOptions } from './definition.js';
import type { ShardSpec } from '../core/keyset.js';
import { readOutputOptions } from './output_options.js';
import { RotatingPartWriter } from './part_writer.js';
import type { Exporter, ObjectService, PartMeta, ShardWriter } from './types.js';

/** Event-time partitioned keys, so a day's or an hour's logs sit under one prefix. */
export const OBJECT_DEFAULT_TEMPLATE = '{prefix}/dt={date}/hour={hour}/{prefix}-{shard}-{part}.{ext}';

export function readObjectStoreOptions(r: OptionReader, id: string): ObjectStoreOptions {
  const output = readOutputOptions(r, OBJECT_DEFAULT_TEMPLATE);
  return {
    id,
    ...output,
    // Object stores get smaller default objects than local files: downstream readers (Athena,
    // BigQuery external tables, Spark) split work per object.
    maxBytesPerFile: r.byteSize('maxBytesPerFile', 256 * 1000 * 1000),
    maxAttempts: r.integer('maxAttempts', 5, 1, 20),
  };
}

export function optionalUrl(r: OptionReader, key: string): string | undefined {
  const v = r.optionalString(key);
  if (v !== undefined && !/^https?:\/\//.test(v)) throw new ConfigError(r.at(key), `must be an http:// or https:// URL (got ${quote(v)})`);
  return v;
}

/** Object metadata every store gets: what is inside, without opening it. */
export function partMetadata(meta: PartMeta): Record<string, string> {
  return {
    'logship-exporter': meta.exporterId,
    'logship-shard': meta.shardId,
    'logship-rows': String(meta.rows),
    'logship-min-timestamp': meta.minTs,
    'logship-max-timestamp': meta.maxTs,
  };
}

export function objectStoreExporter(config: ObjectStoreOptions, service: ObjectService & { close?(): Promise<void> }): Exporter {
  return {
    id: config.id,
    check: () => service.check(),
    openShard: (shard: ShardSpec, table, context): ShardWriter => new RotatingPartWriter(config.id, config, service, shard, table, context?.fence),
    close: async () => service.close?.(),
  };
}
