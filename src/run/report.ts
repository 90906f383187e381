import type { Piscina } from 'piscina';
import type pg from 'pg';
import type { Config } from '../shard/config.js';
import type { Bound } from '../core/keyset.js';

import type { ExportWindow } from '../plan/window.js';

import type { Logger } from '../core/log.js';
import type { RunObserver } from './observer.js';
import type { Progress } from './progress.js';

import { StopControl, type StopReason } from './stop.js';

export interface ExporterTotals { rows: number; files: number; bytes: number; removedStaleParts: number; deadLettered: number }

export interface RunReport {
  /** partial: stopped at the deadline or by a signal; a rerun resumes. */
  status: 'ok' | 'failed' | 'partial';
  error?: string;
  /** Set when the run stopped early: why, and how many of the current run's shards are left. */
  stopped?: { reason: StopReason; shardsLeft: number; shardsTotal: number };
  offsetKey: string;
  offsetBefore: Bound | null;
  offsetAfter: Bound | null;
  runs: { runId: string; kind: 'window' | 'late'; resumed: boolean; window: { start: Bound; end: Bound }; shards: number; shardsExportedNow: number; rows: number }[];
  rows: number;
  files: number;
  bytes: number;
  deletedRows: number | null;
  durationMs: number;
  rowsPerSec: number;
  /** Of this process, worker threads included (PostgreSQL's own backends are not). */
  peakRssBytes: number;
  cpuSeconds: number;
  /** Time spent estimating and cutting the window into shards. */
  planningMs: number;
  /**
   * The longest any shard held its REPEATABLE READ snapshot open (ms): while it is open, VACUUM
   * cannot remove rows that died after it in any table of the database, Kestra's busy queue
   * tables included.
   */
  oldestSnapshotMs: number;
  /**
   * Times a shard's read went on in a new snapshot to stay within source.maxSnapshotAge, and
   * shards whose unordered read passed it and were read again, ordered.
   */
  snapshotRenewals: number;
  orderedRereads: number;
  /** Rows the source could not export (NULL, not UTF-8, over maxRowBytes), now in dead-letter files. */
  badRows: number;
  /** Where those are (config `deadLetter`). */
  deadLetter: string;
  /** The late-row catch-up: ranges inside the horizon checked, ranges with late rows, rows exported, time spent. */
  late: { rangesChecked: number; rangesCaughtUp: number; rows: number; durationMs: number; checkMs: number };
  exporters: Record<string, ExporterTotals>;
  /** GET and PUT requests to an object-store state (null for postgres and file state). */
  stateRequests: { get: number; put: number } | null;
}

export interface RunOptions {
  log: Logger;
  progress: Progress;
  /** Export exactly this window instead of [offset, now - lag) (used by `tune`). */
  fixedWindow?: ExportWindow;
  /** Metrics: told of the plan, each shard, the offset and each request's outcome. */
  observer?: RunObserver;
  /** Deadline and signals; by default from config.maxDuration and config.stopGrace. */
  stop?: StopControl;
  /**
   * A shard pool the caller started (the CLI starts it before loading the run's modules) and
   * ends; by default the run starts its own and ends it.
   */
  pool?: Piscina;
}

/**
 * A report with nothing done yet, for a run or one `--follow` cycle (Runner.cycle fills it).
 */
export function emptyReport(config: Config): RunReport {
  const report: RunReport = {
    status: 'ok', offsetKey: config.offsetKey, offsetBefore: null, offsetAfter: null, runs: [],
    rows: 0, files: 0, bytes: 0, deletedRows: config.delete ? 0 : null, durationMs: 0, rowsPerSec: 0, peakRssBytes: 0, cpuSeconds: 0, planningMs: 0, oldestSnapshotMs: 0, snapshotRenewals: 0, orderedRereads: 0, stateRequests: null,
    badRows: 0, deadLetter: config.deadLetter, late: { rangesChecked: 0, rangesCaughtUp: 0, rows: 0, durationMs: 0, checkMs: 0 }, exporters: {},
  };
  for (const e of config.logExporters) report.exporters[e.id] = { rows: 0, files: 0, bytes: 0, removedStaleParts: 0, deadLettered: 0 };
  return report;
}

/** The report's duration, rate and this process's resource use (worker threads included). */
export function finishReport(report: RunReport, started: number): void {
  report.durationMs = Date.now() - started;
  report.rowsPerSec = report.durationMs > 0 ? Math.round((report.rows / report.durationMs) * 1000) : 0;
  const usage = process.resourceUsage();
  report.peakRssBytes = usage.maxRSS * 1024;
  report.cpuSeconds = Math.round((usage.userCPUTime + usage.systemCPUTime) / 1e4) / 100;
}
