export type Format = 'NDJSON' | 'JSON' | 'PARQUET';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Options every file-shaped exporter (local files, object stores) shares. */
export type ParquetCodec = 'SNAPPY' | 'GZIP' | 'ZSTD' | 'NONE';

export interface OutputOptions {
  format: Format;
  /** Parquet page compression (Parquet files get no file-level compression). */
  parquetCompression: ParquetCodec;
  /** Rows per Parquet row group: the unit a Parquet part buffers before streaming it out. */
  rowGroupSize: number;
  compression: Compression;
  compressionLevel: number;
  maxLinesPerFile: number;
  maxBytesPerFile: number;
  logFilePrefix: string;
  keyTemplate: string;
}
