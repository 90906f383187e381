import { randomUUID } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type pg from 'pg';
import { errorMessage, RunError } from '../config/errors.js';
import { writesFiles, type Config } from '../config/types.js';
import type { Bound } from '../plan/keyset.js';
import { planShards, type ShardPlan, type ShardSpec } from '../plan/shards.js';
import { computeWindow, type ExportWindow } from '../plan/window.js';
import { connectSource, passRawBytesFromSqlAscii } from '../source/connection.js';
import { describeTable, type SourceTable } from '../source/table.js';
import { createExporter } from '../sinks/create.js';
import { templateGranularity, type Granularity } from '../sinks/naming.js';
import { checkpointOffset } from '../state/checkpoint.js';
import { createStateStore } from '../state/create.js';
import type { ReadRange, RunManifest, ShardOutcome, StateStore } from '../state/types.js';
import { catchUpLateRows, currentSnapshot, horizonStart, nextReads, type Ledger } from './late_rows.js';
import { redact } from '../config/secrets.js';
import type { Logger } from '../util/log.js';
import { workerFile } from '../util/paths.js';
import { Progress } from './progress.js';
import { shardRetryDecision, withRetries } from './retry.js';
import { filtersOf, type ProgressMessage, type ShardTaskInput } from './shard_task.js';

export interface ExporterTotals { rows: number; files: number; bytes: number; removedStaleParts: number; deadLettered: number }

export interface RunReport {
  status: 'ok' | 'failed';
  error?: string;
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
  /** Time spent counting and cutting the window into shards. */
  planningMs: number;
  /** Rows the source could not export (NULL, not UTF-8, over maxRowBytes), now in dead-letter files. */
  badRows: number;
  /** Where those are (config `deadLetter`). */
  deadLetter: string;
  /** The late-row catch-up: ranges inside the horizon checked, ranges with late rows, rows exported, time spent. */
  late: { rangesChecked: number; rangesCaughtUp: number; rows: number; durationMs: number };
  exporters: Record<string, ExporterTotals>;
}

export interface RunOptions {
  log: Logger;
  progress: Progress;
  /** Export exactly this window instead of [offset, now - lag) (used by `tune`). */
  fixedWindow?: ExportWindow;
}

/** The finest event-time partition any exporter's names use; shards are cut at its edges. */
export function planGranularity(config: Config): Granularity | null {
  const gs = config.logExporters.filter(writesFiles).map((e) => templateGranularity(e.keyTemplate));
  if (gs.includes('hour')) return 'hour';
  if (gs.includes('day')) return 'day';
  return null;
}

export async function planWindow(client: pg.Client, table: SourceTable, config: Config, window: ExportWindow): Promise<ShardPlan> {
  return planShards(client, table, filtersOf(config), window.start, window.end, {
    offsetKey: config.offsetKey,
    workers: config.workers,
    rowsPerShard: config.rowsPerShard,
    granularity: planGranularity(config),
  });
}

/**
 * A run: finish any run a crash left behind, then plan [offset, now - lag) into shards, store the
 * manifest, export the shards on worker threads and move the offset over the finished prefix.
 */
export function emptyReport(config: Config): RunReport {
  const report: RunReport = {
    status: 'ok', offsetKey: config.offsetKey, offsetBefore: null, offsetAfter: null, runs: [],
    rows: 0, files: 0, bytes: 0, deletedRows: config.delete ? 0 : null, durationMs: 0, rowsPerSec: 0, peakRssBytes: 0, cpuSeconds: 0, planningMs: 0,
    badRows: 0, deadLetter: config.deadLetter, late: { rangesChecked: 0, rangesCaughtUp: 0, rows: 0, durationMs: 0 }, exporters: {},
  };
  for (const e of config.logExporters) report.exporters[e.id] = { rows: 0, files: 0, bytes: 0, removedStaleParts: 0, deadLettered: 0 };
  return report;
}

/** Fills `report` as it goes, so a failed run still reports what it got done. */
export async function runExport(config: Config, o: RunOptions, report: RunReport = emptyReport(config)): Promise<RunReport> {
  const started = Date.now();

  const main = await connectSource(config.source, 'main');
  let store: StateStore | null = null;
  let pool: Piscina | null = null;
  try {
    await passRawBytesFromSqlAscii(main);
    const table = await describeTable(main, config.source);
    store = createStateStore(config, main);
    await store.open();
    await checkExporters(config);
    const state = await store.load();
    report.offsetBefore = state.offset;
    report.offsetAfter = state.offset;
    pool = new Piscina({ filename: workerFile(), minThreads: config.workers, maxThreads: config.workers, idleTimeout: 60_000 });

    const ledger: Ledger = { reads: state.reads, horizonStart: await horizonStart(main, config) };
    let offset = state.offset;
    if (state.run) {
      o.log.info({ runId: state.run.runId, done: state.done.size, shards: state.run.shards.length }, 'resuming an unfinished run before planning new work');
      offset = await executeRun(config, table, store, pool, state.run, state.done, true, report, o, ledger);
    }

    // Taken before planning: if the window plans no shards, this is the read that covered it.
    const snapshot = ledger.horizonStart === null ? undefined : await currentSnapshot(main);
    const window = o.fixedWindow ?? (await computeWindow(main, offset, config.lookbackPeriod, config.safetyLag));
    if (!window) {
      o.log.info({ offset }, 'nothing to export: the window is empty (offset is within the safety lag of now)');
    } else {
      const planStarted = Date.now();
      const plan = await planWindow(main, table, config, window);
      report.planningMs += Date.now() - planStarted;
      const run: RunManifest = {
        runId: randomUUID(), createdAt: new Date().toISOString(), kind: 'window',
        window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards, snapshot,
      };
      o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length, method: plan.method }, 'planned');
      await store.beginRun(run);
      offset = await executeRun(config, table, store, pool, run, new Map(), false, report, o, ledger);
    }
    if (offset && !o.fixedWindow) {
      const lateStarted = Date.now();
      const s = store;
      const p = pool;
      await catchUpLateRows(main, table, config, ledger, offset, report, o.log, (run) => s.beginRun(run).then(() => executeRun(config, table, s, p, run, new Map(), false, report, o, ledger)));
      report.late.durationMs += Date.now() - lateStarted;
    }
    return report;
  } finally {
    o.progress.stop();
    report.durationMs = Date.now() - started;
    report.rowsPerSec = report.durationMs > 0 ? Math.round((report.rows / report.durationMs) * 1000) : 0;
    const usage = process.resourceUsage();
    report.peakRssBytes = usage.maxRSS * 1024;
    report.cpuSeconds = Math.round((usage.userCPUTime + usage.systemCPUTime) / 1e4) / 100;
    await pool?.destroy().catch(() => {});
    await store?.close().catch(() => {});
    await main.end().catch(() => {});
  }
}

async function checkExporters(config: Config): Promise<void> {
  for (const e of config.logExporters) {
    const exporter = await createExporter(e);
    try {
      await exporter.check();
    } finally {
      await exporter.close();
    }
  }
}

/**
 * Runs the manifest's unfinished shards, at most `workers` at a time. The first failure stops new
 * shards from starting; shards already running may still finish and be checkpointed.
 */
async function executeRun(
  config: Config, table: SourceTable, store: StateStore, pool: Piscina, run: RunManifest,
  done: Map<number, ShardOutcome>, resumed: boolean, report: RunReport, o: RunOptions, ledger: Ledger,
): Promise<Bound> {
  const todo = run.shards.filter((s) => !done.has(s.index));
  const entry = { runId: run.runId, kind: run.kind ?? 'window', resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 };
  report.runs.push(entry);
  o.progress.begin(todo.reduce((s, x) => s + x.estimatedRows, 0), todo.length);

  let failure: unknown = null;
  // Checkpoint writes are serialised so the stored offset only ever moves forward.
  let checkpoints: Promise<void> = Promise.resolve();
  let next = 0;

  /** One attempt on a worker thread, with its own progress channel (a port transfers only once). */
  const attemptShard = async (shard: ShardSpec): Promise<ShardOutcome> => {
    const channel = new MessageChannel();
    channel.port1.on('message', (m: ProgressMessage) => o.progress.update(m.shard, m.rows));
    try {
      const input: ShardTaskInput = { config, table, shard, runId: run.runId, progress: channel.port2 };
      return await pool.run(input, { transferList: [channel.port2] });
    } finally {
      channel.port1.close();
    }
  };

  const runOne = async (): Promise<void> => {
    while (failure === null && next < todo.length) {
      const shard = todo[next++]!;
      try {
        const outcome = await withRetries(
          { attempts: config.shardAttempts, firstDelayMs: 1000, maxDelayMs: 30_000 },
          (err) => failure === null && shardRetryDecision(err) === 'retry',
          () => attemptShard(shard),
          (err, n) => o.log.warn({ shard: shard.index, attempt: n, error: redact(errorMessage(err)) }, 'shard failed; retrying it (a shard rerun overwrites its own parts)'),
        );
        done.set(shard.index, outcome);
        const offset = checkpointOffset(run, done);
        checkpoints = checkpoints.then(() => store.shardDone(run.runId, shard.index, outcome, offset));
        await checkpoints;
        report.offsetAfter = offset;
        o.progress.shardFinished(shard.index, outcome.rows);
        entry.shardsExportedNow++;
        entry.rows += outcome.rows;
        addOutcome(report, outcome);
        if (run.kind === 'late') report.late.rows += outcome.rows;
        o.log.debug({ shard: shard.index, rows: outcome.rows }, 'shard done');
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.workers, todo.length) }, runOne));
  if (failure !== null) {
    throw new RunError(`${errorMessage(failure)}; the offset stays at the last fully exported shard and a rerun resumes from there`, { cause: failure });
  }
  const reads: ReadRange[] = nextReads(config, run, done, ledger);
  await store.endRun(run.runId, run.window.end, reads);
  ledger.reads = reads;
  report.offsetAfter = run.window.end;
  return run.window.end;
}

function addOutcome(report: RunReport, outcome: ShardOutcome): void {
  report.rows += outcome.rows;
  report.badRows += outcome.badRows ?? 0;
  if (outcome.deletedRows !== null) report.deletedRows = (report.deletedRows ?? 0) + outcome.deletedRows;
  for (const r of outcome.exporters) {
    const t = report.exporters[r.exporterId];
    if (!t) continue;
    t.rows += r.rows;
    t.files += r.parts.length;
    t.bytes += r.bytes;
    t.removedStaleParts += r.removed.length;
    t.deadLettered += r.deadLettered;
    report.files += r.parts.length;
    report.bytes += r.bytes;
  }
}

