import { defineSink } from '../definition.js';
import { firstPartName } from '../file_target.js';
import { FILE_TYPES, parseFileExporter, type FileExporterConfig } from './config.js';

export const fileSink = defineSink<FileExporterConfig>({
  type: FILE_TYPES[0]!,
  aliases: FILE_TYPES.slice(1),
  shape: 'files',
  guarantee: 'exactly-once',
  parse: parseFileExporter,
  load: async (config) => (await import('./index.js')).createFileExporter(config),
  describeTarget: firstPartName,
});
