import { defineSink } from '../definition.js';
import { firstPartName } from '../file_target.js';
import { AZURE_TYPES, parseAzureBlobExporter, type AzureBlobExporterConfig } from './config.js';

export const azureBlobSink = defineSink<AzureBlobExporterConfig>({
  type: AZURE_TYPES[0]!,
  aliases: AZURE_TYPES.slice(1),
  shape: 'files',
  guarantee: 'exactly-once',
  parse: parseAzureBlobExporter,
  load: async (config) => {
    const [{ objectStoreExporter }, { AzureBlobService }] = await Promise.all([import('../object_store.js'), import('./service.js')]);
    return objectStoreExporter(config, new AzureBlobService(config));
  },
  describeTarget: firstPartName,
});
