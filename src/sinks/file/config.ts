import { checkWritableLocation } from '../../core/fs_checks.js';
import type { OptionReader } from '../../core/options.js';
import type { OutputOptions } from '../../encode/options.js';
import { readOutputOptions } from '../output_options.js';

export const FILE_TYPES = ['file', 'io.kestra.plugin.ee.core.log.FileLogExporter'];
export const FILE_DEFAULT_TEMPLATE = '{prefix}-{shard}-{part}.{ext}';

export function parseFileExporter(r: OptionReader, id: string): FileExporterConfig {
  const directory = r.string('directory', './logship-out');
  checkWritableLocation(r.at('directory'), directory);
  const output = readOutputOptions(r, FILE_DEFAULT_TEMPLATE);
  return { id, type: 'file', directory, ...output };
}

export interface FileExporterConfig extends OutputOptions {
  id: string;
  type: 'file';
  directory: string;
}
