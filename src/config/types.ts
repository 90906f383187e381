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
  /** Sort each shard by (timestamp, key), so files are in time order. */
  ordered: boolean;
}

export type StateConfig = { type: 'postgres'; table: string } | { type: 'file'; path: string };

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

export interface FileExporterConfig extends OutputOptions {
  id: string;
  type: 'file';
  directory: string;
}

/** Options shared by the object-store exporters. */
export interface ObjectStoreOptions extends OutputOptions {
  id: string;
  /** Attempts per request, retried by the SDK with exponential backoff and jitter. */
  maxAttempts: number;
}

export interface S3ExporterConfig extends ObjectStoreOptions {
  type: 's3';
  bucket: string;
  region: string;
  accessKeyId: string | undefined;
  secretKeyId: string | undefined;
  sessionToken: string | undefined;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Multipart part size and parts in flight: memory per upload is about partSize x (queueSize + 1). */
  partSize: number;
  queueSize: number;
}

export interface GcsExporterConfig extends ObjectStoreOptions {
  type: 'gcs';
  bucket: string;
  projectId: string | undefined;
  serviceAccount: string | undefined;
  endpoint: string | undefined;
  /** Resumable-upload chunk size (a multiple of 256 KiB); the client buffers one chunk. */
  chunkSize: number;
}

export interface AzureBlobExporterConfig extends ObjectStoreOptions {
  type: 'azure-blob';
  endpoint: string | undefined;
  containerName: string;
  connectionString: string | undefined;
  sasToken: string | undefined;
  sharedKeyAccountName: string | undefined;
  sharedKeyAccountAccessKey: string | undefined;
  tenantId: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  blockSize: number;
  concurrency: number;
}

export type ObjectStoreConfig = S3ExporterConfig | GcsExporterConfig | AzureBlobExporterConfig;

export interface SearchExporterConfig {
  id: string;
  type: 'elasticsearch' | 'opensearch';
  /** Index, alias or data stream; `{yyyy.MM.dd}`-style parts take each row's event time. */
  indexName: string;
  hosts: string[];
  username: string | undefined;
  password: string | undefined;
  apiKey: string | undefined;
  headers: Record<string, string>;
  trustAllSsl: boolean;
  caCertificate: string | undefined;
  /** Documents per _bulk request, and the byte cap; whichever comes first. */
  chunk: number;
  flushBytes: number;
  /** _bulk requests in flight per worker. */
  concurrency: number;
  opType: 'create' | 'index';
  deadLetter: string;
  allowDeadLetter: boolean;
  maxAttempts: number;
  requestTimeoutMs: number;
}

export type ExporterConfig = FileExporterConfig | ObjectStoreConfig | SearchExporterConfig;

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
  /** Tries per shard before the run fails; transient failures only. */
  shardAttempts: number;
  state: StateConfig;
  /** What a row that cannot be exported (NULL, not UTF-8, over maxRowBytes) does: go to a dead-letter file, or fail the shard. */
  badRows: 'deadLetter' | 'fail';
  /** A row whose document is larger than this is a bad row. */
  maxRowBytes: number;
  /** Directory of the source's dead-letter files (one per shard that had bad rows). */
  deadLetter: string;
  /** Exit 0 instead of 3 when the source dead-lettered rows. */
  allowDeadLetter: boolean;
  /** Late rows: how far back rows committed after the read that covered them are still caught; PT0S = off. */
  lateRows: { horizon: string };
  logExporters: ExporterConfig[];
}

/** Exporters that write files or objects (and so have names, formats and rotation). */
export function writesFiles(e: ExporterConfig): e is FileExporterConfig | ObjectStoreConfig {
  return e.type !== 'elasticsearch' && e.type !== 'opensearch';
}
