import path from 'node:path';
import { defineSink } from '../definition.js';
import { firstPartName } from '../file_target.js';
import { FILE_TYPES, parseFileExporter } from './config.js';

export const fileSink = defineSink({
  type: FILE_TYPES[0]!,
  aliases: FILE_TYPES.slice(1),
  shape: 'files',
  guarantee: 'exactly-once',
  parse: parseFileExporter,
  load: async (config) => (await import('./index.js')).createFileExporter(config),
  describeTarget: (config, shard) => path.join(config.directory, firstPartName(config, shard)),
});
