import { ConfigError } from '../core/errors.js';
import type { OptionReader } from '../core/options.js';
import type { Compression, Format, OutputOptions, ParquetCodec } from '../encode/options.js';
import { assertCompressionAvailable } from '../encode/compress.js';

export const PLACEHOLDERS = ['prefix', 'shard', 'part', 'ext', 'date', 'hour', 'exporter'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

const DEFAULT_LEVEL: Record<Compression, number> = { gzip: 1, zstd: 3, none: 0 };
const LEVEL_RANGE: Record<Compression, [number, number]> = { gzip: [1, 9], zstd: [1, 19], none: [0, 0] };

/** Reads the options shared by every exporter that writes files or objects. */
export function readOutputOptions(r: OptionReader, defaultTemplate: string): OutputOptions {
  const format = r.choice<Format>('format', ['NDJSON', 'JSON', 'PARQUET', 'ION'] as Format[], 'NDJSON');
  if ((format as string) === 'ION') throw new ConfigError(r.at('format'), 'not supported yet: ION (use NDJSON, JSON or PARQUET)');
  const compression = r.choice<Compression>('compression', ['gzip', 'zstd', 'none'], format === 'PARQUET' ? 'none' : 'gzip');
  if (format === 'PARQUET' && compression !== 'none') {
    throw new ConfigError(r.at('compression'), 'does not apply to PARQUET, which compresses its pages: use parquetCompression (SNAPPY, GZIP, ZSTD or NONE)');
  }
  const parquetCompression = r.choice<ParquetCodec>('parquetCompression', ['SNAPPY', 'GZIP', 'ZSTD', 'NONE'], 'ZSTD');
  if (format !== 'PARQUET' && r.has('parquetCompression')) throw new ConfigError(r.at('parquetCompression'), 'applies only to format PARQUET');
  const rowGroupSize = r.integer('rowGroupSize', 20_000, 100, 10_000_000);
  if (format !== 'PARQUET' && r.has('rowGroupSize')) throw new ConfigError(r.at('rowGroupSize'), 'applies only to format PARQUET');
  assertCompressionAvailable(r.at('compression'), compression);
  if (format === 'PARQUET' && parquetCompression === 'ZSTD') assertCompressionAvailable(r.at('parquetCompression'), 'zstd');
  const [lo, hi] = LEVEL_RANGE[compression];
  const compressionLevel = r.integer('compressionLevel', DEFAULT_LEVEL[compression], lo, hi);
  const keyTemplate = r.string('keyTemplate', defaultTemplate);
  validateTemplate(r.at('keyTemplate'), keyTemplate);
  return {
    format,
    parquetCompression,
    rowGroupSize,
    compression,
    compressionLevel,
    maxLinesPerFile: r.integer('maxLinesPerFile', 100_000),
    maxBytesPerFile: r.byteSize('maxBytesPerFile', 1024 ** 3),
    logFilePrefix: r.string('logFilePrefix', 'kestra-log-file'),
    keyTemplate,
  };
}

export function validateTemplate(path: string, template: string): void {
  for (const m of template.matchAll(/\{([^}]*)\}/g)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
      throw new ConfigError(path, `unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`);
    }
  }
  // Without both, two parts or two shards would map to one name and overwrite each other.
  if (!template.includes('{shard}') || !template.includes('{part}')) {
    throw new ConfigError(path, 'must contain {shard} and {part} so every file name is unique');
  }
  if (template.indexOf('{part}') < template.indexOf('{shard}')) {
    throw new ConfigError(path, '{part} must come after {shard}');
  }
}
