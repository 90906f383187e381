/** The validated, fully defaulted configuration that the rest of logship works from. */

export const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type Level = (typeof LEVELS)[number];

export interface ColumnMapping {
  timestamp: string;
  key: string;
  level: string | null;
  namespace: string | null;
  tenant: string | null;
  /** JSON body column; null = the whole row as JSON (to_jsonb). */
  body: string | null;
  /** Soft-delete flag; undefined = use a boolean `deleted` column when the table has one. */
  deleted: string | null | undefined;
}

export interface SourceConfig {
  url: string | undefined;
  table: string;
  columns: ColumnMapping;
  /** copy = COPY … TO STDOUT (binary), cursor = pg-query-stream. Same bytes out; copy is faster. */
  stream: 'copy' | 'cursor';
  /** Rows per batch handed from the reader to the exporters. */
  fetchSize: number;
}

export type StateConfig = { type: 'postgres'; table: string } | { type: 'file'; path: string };

export type Format = 'NDJSON' | 'JSON' | 'PARQUET';
export type Compression = 'gzip' | 'zstd' | 'none';

/** Options every file-shaped exporter (local files, object stores) shares. */
export interface OutputOptions {
  format: Format;
  compression: Compression;
  compressionLevel: number;
  maxLinesPerFile: number;
  maxBytesPerFile: number;
  logFilePrefix: string;
  keyTemplate: string;
}

export interface FileExporterConfig extends OutputOptions {
  id: string;
  type: 'file';
  directory: string;
}

export type ExporterConfig = FileExporterConfig;

export interface Config {
  source: SourceConfig;
  logLevelFilter: Level | undefined;
  lookbackPeriod: string;
  namespace: string | undefined;
  tenantId: string | undefined;
  offsetKey: string;
  delete: boolean;
  safetyLag: string;
  workers: number;
  rowsPerShard: number;
  state: StateConfig;
  logExporters: ExporterConfig[];
}
