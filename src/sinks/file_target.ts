import type { FileShapedConfig } from './definition.js';
import { formatExtension } from '../encode/part_encoder.js';
import { tsToMicros } from '../core/keyset.js';
import type { ShardSpec } from '../core/keyset.js';
import { PartNamer, partitionStart } from './naming.js';
import { partExtension } from './part_writer.js';

/** A shard's first file or object name, what `plan` shows for file-shaped exporters. */
export function firstPartName(config: FileShapedConfig, shard: ShardSpec): string {
  const namer = new PartNamer(config.keyTemplate, {
    prefix: config.logFilePrefix, exporter: config.id, shard: shard.id,
    ext: partExtension(config, formatExtension(config.format)),
  });
  const micros = tsToMicros(shard.lo.ts);
  return namer.name(1, namer.granularity ? partitionStart(micros, namer.granularity) : micros);
}
