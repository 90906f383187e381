/** The validated, fully defaulted configuration that the rest of logship works from. */
import type { ExporterConfigBase } from '../sinks/definition.js';
import type { QueueConfig } from './queue_config.js';
import type { AzureBlobExporterConfig } from '../sinks/azure_blob/config.js';
import type { GcsExporterConfig } from '../sinks/gcs/config.js';
import type { S3ExporterConfig } from '../sinks/s3/config.js';

export type { ExporterConfigBase };

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
  /** Audit logs: the Kestra resource column that `resources` filters on. */
  resource: string | null;
}

export interface SourceConfig {
  url: string | undefined;
  /** Kept apart from the URL so a password with / # ? @ needs no percent-encoding. */
  password: string | undefined;
  table: string;
  columns: ColumnMapping;
  /** copy = COPY … TO STDOUT (binary), cursor = pg-query-stream. Same bytes out; copy is faster. */
  stream: 'copy' | 'cursor';
  /** Rows per batch handed from the reader to the exporters. */
  fetchSize: number;
  /** Sort each shard by (timestamp, key), so files are in time order. */
  ordered: boolean;
  /**
   * Per-session limits in ms (0 = none). Optional like applicationName: a config built by hand
   * (tests, tools) gets connection.ts's defaults.
   */
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  /**
   * The oldest a shard read's snapshot may get before the read takes a new one
   * (source.maxSnapshotAge), ms; 0 = no limit. Optional like the timeouts: a config built by
   * hand gets DEFAULT_MAX_SNAPSHOT_AGE_MS.
   */
  maxSnapshotAgeMs?: number;
  /** maxSnapshotAge was written in the config (with `delete`, which it cannot apply to, that earns a warning). */
  maxSnapshotAgeSet?: boolean;
  /** `logship:<offsetKey>`, set by parseConfig: sessions are named `<this>:<role>`. */
  applicationName?: string;
}

/** State as one JSON object per offsetKey in a bucket or container, locked by a lease object. */
export interface ObjectStateConfig {
  type: 's3' | 'gcs' | 'azure-blob';
  /** As written: s3://bucket/prefix/, gs://bucket/prefix/, azure://container/prefix/. */
  uri: string;
  /** Object-name prefix inside the bucket or container ('' or ending in '/'). */
  prefix: string;
  /** The state object is written at most this often (and at run end, stop and exit). */
  flushIntervalMs: number;
  /** A lease not renewed for this long is taken over by the next run. */
  leaseMs: number;
  /** The client options, parsed with the same rules as the exporter of that type. */
  store: S3ExporterConfig | GcsExporterConfig | AzureBlobExporterConfig;
}

export type StateConfig = { type: 'postgres'; table: string } | { type: 'file'; path: string } | ObjectStateConfig;

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

/** Options shared by the object-store exporters. */
export interface ObjectStoreOptions extends OutputOptions {
  id: string;
  /** Attempts per request, retried by the SDK with exponential backoff and jitter. */
  maxAttempts: number;
}

/** Any exporter's parsed options; its definition (src/sinks/registry.ts) knows the exact type. */
export type ExporterConfig = ExporterConfigBase;

/** The options of an exporter that writes files or objects. */
export interface FileShapedConfig extends ExporterConfigBase, OutputOptions {}

export interface Config {
  /** `logs` (LogShipper) or `audit` (AuditLogShipper: `resources` instead of `logLevelFilter`). */
  kind: 'logs' | 'audit';
  source: SourceConfig;
  logLevelFilter: Level | undefined;
  /** Audit logs only: the Kestra resources to export, every spelling a row may carry. */
  resources: string[] | undefined;
  lookbackPeriod: string;
  namespace: string | undefined;
  tenantId: string | undefined;
  offsetKey: string;
  delete: boolean;
  safetyLag: string;
  workers: number;
  /** How `workers` was chosen (auto: where the database runs), for plan and logs. */
  workersReason?: string;
  rowsPerShard: number;
  /** False when rowsPerShard is the default: the planner may then size shards to how they are read. */
  rowsPerShardSet: boolean;
  /** Tries per shard before the run fails; transient failures only. */
  shardAttempts: number;
  /** The run's time budget (maxDuration, or --max-duration); null = none. */
  maxDurationMs: number | null;
  /** Running shards stop this long before the deadline, to leave time for the checkpoint. */
  stopGraceMs: number;
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
  /** Distributed mode's job queue (read only by `run --distributed`, `worker` and `status`). */
  queue?: QueueConfig;
  logExporters: ExporterConfig[];
}
