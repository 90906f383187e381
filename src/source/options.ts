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
