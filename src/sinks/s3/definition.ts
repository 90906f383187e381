import { defineSink } from '../definition.js';
import { firstPartName } from '../file_target.js';
import { S3_TYPES, parseS3Exporter, type S3ExporterConfig } from './config.js';

export const s3Sink = defineSink<S3ExporterConfig>({
  type: S3_TYPES[0]!,
  aliases: S3_TYPES.slice(1),
  shape: 'files',
  guarantee: 'exactly-once',
  parse: parseS3Exporter,
  load: async (config) => {
    const [{ objectStoreExporter }, { S3Service }] = await Promise.all([import('../object_store.js'), import('./service.js')]);
    return objectStoreExporter(config, new S3Service(config));
  },
  describeTarget: firstPartName,
});
