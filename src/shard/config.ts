import type { ExporterConfig } from '../sinks/definition.js';
import type { StateConfig } from '../state/options.js';

import { Level, SourceConfig } from '../source/options.js';

import type { QueueConfig } from '../state/options.js';

import type pg from 'pg';

import { type Filters } from '../source/query.js';
import { isoDurationMillis } from '../core/options.js';

export function filtersOf(config: Config): Filters {
  return { logLevelFilter: config.logLevelFilter, namespace: config.namespace, tenantId: config.tenantId, resources: config.resources };
}

/** Whether late rows are caught up (lateRows.horizon above zero): shards then leave rows to the catch-up. */
export function lateRowsEnabled(config: Pick<Config, 'lateRows'>): boolean {
  return (isoDurationMillis(config.lateRows.horizon) ?? 0) > 0;
}

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
