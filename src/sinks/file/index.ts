import path from 'node:path';
import type { FileExporterConfig } from './config.js';
import type { ShardSpec } from '../../core/keyset.js';
import { RotatingPartWriter } from '../part_writer.js';
import type { Exporter, ShardWriter } from '../types.js';
import { FileService } from './service.js';

export function createFileExporter(config: FileExporterConfig): Exporter {
  const service = new FileService(config.id, path.resolve(config.directory));
  return {
    id: config.id,
    check: () => service.check(),
    openShard: (shard: ShardSpec, table, context): ShardWriter => new RotatingPartWriter(config.id, config, service, shard, table, context?.fence),
    close: async () => {},
  };
}
