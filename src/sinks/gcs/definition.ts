import { defineSink } from '../definition.js';
import { firstPartName } from '../file_target.js';
import { GCS_TYPES, parseGcsExporter, type GcsExporterConfig } from './config.js';

export const gcsSink = defineSink<GcsExporterConfig>({
  type: GCS_TYPES[0]!,
  aliases: GCS_TYPES.slice(1),
  shape: 'files',
  guarantee: 'exactly-once',
  parse: parseGcsExporter,
  load: async (config) => {
    const [{ objectStoreExporter }, { GcsService }] = await Promise.all([import('../object_store.js'), import('./service.js')]);
    return objectStoreExporter(config, new GcsService(config));
  },
  describeTarget: firstPartName,
});
