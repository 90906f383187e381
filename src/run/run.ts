import { randomUUID } from 'node:crypto';
import type { Piscina } from 'piscina';
import type pg from 'pg';
import { errorMessage, RunError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { tsToMicros, type Bound } from '../plan/keyset.js';
import { planShards, tableScanWarning, type ShardPlan, type ShardSpec } from '../plan/shards.js';
import { computeWindow, emptyWindowReason, type ExportWindow } from '../plan/window.js';
import { SourceSession } from '../source/session.js';
import { affordableWorkers, freeConnections } from '../source/connection_budget.js';
import { passRawBytesFromSqlAscii } from '../source/connection.js';
import { describeTable, type SourceTable } from '../source/table.js';
import { createExporter, maxShardLeadMs } from '../sinks/registry.js';
import { checkpointOffset } from '../state/checkpoint.js';
import { createStateStore } from '../state/create.js';
import type { ReadRange, RunManifest, ShardAcks, ShardOutcome, StateStore } from '../state/types.js';
import { currentSnapshot, horizonStart, LateCheck, lateRun, nextReads, type Ledger } from './late_rows.js';
import { redact } from '../config/secrets.js';
import type { Logger } from '../util/log.js';
import type { RunObserver } from './observer.js';
import { Progress } from './progress.js';
import { kindOf } from './error_kind.js';
import { attemptShardOnPool } from './shard_attempt.js';
import { createShardPool, destroyShardPool } from './worker_pool.js';
import { shardRetryDecision, withRetries } from './retry.js';
import { filtersOf } from './shard_task.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { ShardPace, ShardStoppedError, StopControl, type StopReason } from './stop.js';

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
 * `distributed`: the coordinator cannot know how many workers will come, so shards keep to
 * rowsPerShard even when each is a whole-table scan.
 */
export async function planWindow(client: pg.Client, table: SourceTable, config: Config, window: ExportWindow, distributed = false): Promise<ShardPlan> {
  return planShards(client, table, filtersOf(config), window.start, window.end, {
    offsetKey: config.offsetKey,
    workers: config.workers,
    rowsPerShard: config.rowsPerShard,
    autoShardSize: !config.rowsPerShardSet && !distributed,
  });
}

/**
 * A run: finish any run a crash left behind, then plan [offset, now - lag) into shards, store the
 * manifest, export the shards on worker threads and move the offset over the finished prefix.
 */
export function emptyReport(config: Config): RunReport {
  const report: RunReport = {
    status: 'ok', offsetKey: config.offsetKey, offsetBefore: null, offsetAfter: null, runs: [],
    rows: 0, files: 0, bytes: 0, deletedRows: config.delete ? 0 : null, durationMs: 0, rowsPerSec: 0, peakRssBytes: 0, cpuSeconds: 0, planningMs: 0, oldestSnapshotMs: 0, stateRequests: null,
    badRows: 0, deadLetter: config.deadLetter, late: { rangesChecked: 0, rangesCaughtUp: 0, rows: 0, durationMs: 0, checkMs: 0 }, exporters: {},
  };
  for (const e of config.logExporters) report.exporters[e.id] = { rows: 0, files: 0, bytes: 0, removedStaleParts: 0, deadLettered: 0 };
  return report;
}

/** Fills `report` as it goes, so a failed run still reports what it got done. */
export async function runExport(wanted: Config, o: RunOptions, report: RunReport = emptyReport(wanted)): Promise<RunReport> {
  const started = Date.now();
  const stop = o.stop ?? new StopControl({ maxDurationMs: wanted.maxDurationMs, stopGraceMs: wanted.stopGraceMs });
  stop.arm();

  // The worker threads boot (Node's bootstrap, then their modules: ~0.2 s) while this thread
  // connects, checks, reads the state and plans, instead of after: on a one-shard run that was
  // the gap between starting and the first row. A role short of sessions runs fewer shards at
  // once than there are threads; the spare threads idle. A refused run ends the pool only once
  // its threads have loaded (destroyShardPool).
  const ownPool = o.pool === undefined;
  const pool = o.pool ?? createShardPool(wanted, wanted.workers, o.log);
  const main = await SourceSession.open(wanted.source, 'main').catch(async (err: unknown) => {
    if (ownPool) await destroyShardPool(pool).catch(() => {});
    throw err;
  });
  let store: StateStore | null = null;
  let lateCheck: LateCheck | null = null;
  try {
    const budget = await freeConnections(main.current());
    const workers = affordableWorkers(budget, wanted.workers, (message) => o.log.warn(message));
    const spareSessions = (budget?.free ?? Infinity) - workers;
    const config = workers === wanted.workers ? wanted : { ...wanted, workers };
    await passRawBytesFromSqlAscii(main.current());
    const table = await describeTable(main.current(), config.source);
    store = await createStateStore(config, main);
    await store.open();
    await checkExporters(config);
    const state = await store.load();
    report.offsetBefore = state.offset;
    if (state.offset) o.observer?.offset(state.offset);
    report.offsetAfter = state.offset;

    const ledger: Ledger = { reads: state.reads, horizonStart: await main.run((c) => horizonStart(c, config)) };
    let offset = state.offset;
    if (state.run) {
      o.log.info({ runId: state.run.runId, done: state.done.size, shards: state.run.shards.length }, 'resuming an unfinished run before planning new work');
      offset = await executeRun(config, table, store, pool, state.run, state.done, state.acks, true, report, o, stop, ledger);
    }
    if (report.stopped || !stop.mayStart(null)) return stopEarly(report, stop);

    // Taken before planning: if the window plans no shards, this is the read that covered it.
    const snapshot = ledger.horizonStart === null ? undefined : await main.run((c) => currentSnapshot(c));
    const window = o.fixedWindow ?? (await main.run((c) => computeWindow(c, offset, config.lookbackPeriod, config.safetyLag)));
    if (!window) {
      lateCheck = o.fixedWindow ? null : LateCheck.start(config, table, ledger, spareSessions, report, o.log, null);
      o.log.info({ offset, reason: await main.run((c) => emptyWindowReason(c, offset, config.lookbackPeriod, config.safetyLag)) }, 'nothing to export: the window is empty');
    } else {
      const planStarted = Date.now();
      const plan = await main.run((c) => planWindow(c, table, config, window));
      report.planningMs += Date.now() - planStarted;
      lateCheck = o.fixedWindow ? null : LateCheck.start(config, table, ledger, spareSessions, report, o.log, plan);
      const run: RunManifest = {
        runId: randomUUID(), createdAt: new Date().toISOString(), kind: 'window',
        window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards, snapshot,
      };
      o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length, method: plan.method, rowsEstimated: plan.method === 'sample' || plan.method === 'statistics', shardReads: plan.reads, workers: config.workers, workersReason: config.workersReason }, 'planned');
      const scanWarning = tableScanWarning(table, plan, { ...config, autoShardSize: !config.rowsPerShardSet });
      if (scanWarning) o.log.warn(scanWarning);
      await store.beginRun(run);
      offset = await executeRun(config, table, store, pool, run, new Map(), new Map(), false, report, o, stop, ledger, lateCheck);
    }
    if (offset && lateCheck) {
      const lateStarted = Date.now();
      const late = lateRun(await lateCheck.finding(main), offset, report, o.log);
      if (late) {
        await store.beginRun(late);
        await executeRun(config, table, store, pool, late, new Map(), new Map(), false, report, o, stop, ledger);
      }
      report.late.durationMs += Date.now() - lateStarted;
    }
    if (report.stopped || (stop.reason !== null && stop.reason !== 'deadline')) return stopEarly(report, stop);
    return report;
  } finally {
    stop.disarm();
    o.progress.stop();
    await lateCheck?.close();
    report.durationMs = Date.now() - started;
    report.rowsPerSec = report.durationMs > 0 ? Math.round((report.rows / report.durationMs) * 1000) : 0;
    const usage = process.resourceUsage();
    report.peakRssBytes = usage.maxRSS * 1024;
    report.cpuSeconds = Math.round((usage.userCPUTime + usage.systemCPUTime) / 1e4) / 100;
    // close() saves pending object-store state: its failure must not pass silently.
    const closing = store?.close();
    if (ownPool) await destroyShardPool(pool).catch(() => {});
    await closing?.catch((err: unknown) => o.log.error({ error: redact(errorMessage(err)) }, 'saving the state at exit failed; the next run redoes the shards finished since the last save'));
    if (store?.requests) report.stateRequests = { ...store.requests };
    await main.end();
  }
}

/** A stop before all work was done: status partial; a signal is reported even with nothing left. */
function stopEarly(report: RunReport, stop: StopControl): RunReport {
  report.status = 'partial';
  report.stopped ??= { reason: stop.reason ?? 'deadline', shardsLeft: 0, shardsTotal: report.runs.at(-1)?.shards ?? 0 };
  return report;
}

export async function checkExporters(config: Config): Promise<void> {
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
  done: Map<number, ShardOutcome>, acks: ShardAcks, resumed: boolean, report: RunReport, o: RunOptions, stop: StopControl, ledger: Ledger,
  lateCheck: LateCheck | null = null,
): Promise<Bound> {
  const todo = run.shards.filter((s) => !done.has(s.index));
  const entry = { runId: run.runId, kind: run.kind ?? 'window', resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 };
  report.runs.push(entry);
  const expected = todo.reduce((s, x) => s + x.estimatedRows, 0);
  o.progress.begin(expected, todo.length);
  o.observer?.planned(expected);

  let failure: unknown = null;
  // State writes (checkpoints, in-shard acks) are serialised: the stored offset only ever moves
  // forward, and the postgres store's one connection never interleaves two transactions.
  let checkpoints: Promise<void> = Promise.resolve();
  const stateWrite = (write: () => Promise<void>): Promise<void> => (checkpoints = checkpoints.then(write));

  const recordAck = (shard: number, exporterId: string, ack: InShardAck): Promise<void> => {
    acks.set(shard, { ...acks.get(shard), [exporterId]: ack });
    return stateWrite(() => store.saveAck(run.runId, shard, exporterId, ack));
  };
  let next = 0;
  const pace = new ShardPace();
  const lead = shardLead(config, todo, done);

  const attemptShard = (shard: ShardSpec): Promise<ShardOutcome> => attemptShardOnPool(pool, { config, table, shard, runId: run.runId, acks: acks.get(shard.index), lateCheck: lateCheck?.readsFor(shard.index) }, {
    progress: (index, rows) => o.progress.update(index, rows),
    delivery: (exporterId, event) => o.observer?.delivery(exporterId, event),
    ack: (exporterId, ack) => recordAck(shard.index, exporterId, ack),
  }, stop);

  const runOne = async (): Promise<void> => {
    while (failure === null && next < todo.length) {
      if (!stop.mayStart(pace.expectedMs(todo[next]!.estimatedRows))) return;
      if (!lead.mayStart(next)) {
        await lead.changed();
        continue;
      }
      const shard = todo[next++]!;
      const shardStarted = Date.now();
      try {
        const shardStarted = Date.now();
        const { lateCheck: carried, ...outcome } = await withRetries(
          { attempts: config.shardAttempts, firstDelayMs: 1000, maxDelayMs: 30_000 },
          (err) => failure === null && !stop.stopping && shardRetryDecision(err) === 'retry',
          () => attemptShard(shard),
          (err, n) => o.log.warn({ shard: shard.index, attempt: n, error: redact(errorMessage(err)) }, 'shard failed; retrying it (a shard rerun overwrites its own parts)'),
        );
        if (carried) lateCheck?.carriedBy(carried);
        pace.record(outcome.rows, Date.now() - shardStarted);
        done.set(shard.index, outcome);
        const offset = checkpointOffset(run, done);
        await stateWrite(() => store.shardDone(run.runId, shard.index, outcome, offset));
        report.offsetAfter = offset;
        o.observer?.shardDone(outcome, (Date.now() - shardStarted) / 1000);
        o.observer?.offset(offset);
        o.progress.shardFinished(shard.index, outcome.rows);
        entry.shardsExportedNow++;
        entry.rows += outcome.rows;
        addOutcome(report, outcome);
        if (run.kind === 'late') report.late.rows += outcome.rows;
        o.log.debug({ shard: shard.index, rows: outcome.rows }, 'shard done');
      } catch (err) {
        // A shard stopped at the deadline or by a signal is left for the next run, not failed.
        if (!(err instanceof ShardStoppedError)) failure ??= err;
      }
      lead.notify();
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.workers, todo.length) }, runOne));
  if (failure !== null) {
    throw new RunError(`${errorMessage(failure)}; the offset stays at the last fully exported shard and a rerun resumes from there`, { cause: failure, code: kindOf(failure) });
  }
  if (done.size < run.shards.length) {
    report.stopped = { reason: stop.reason ?? 'deadline', shardsLeft: run.shards.length - done.size, shardsTotal: run.shards.length };
    return checkpointOffset(run, done);
  }
  const reads: ReadRange[] = nextReads(config, run, done, ledger);
  await store.endRun(run.runId, run.window.end, reads);
  ledger.reads = reads;
  report.offsetAfter = run.window.end;
  o.observer?.offset(run.window.end);
  return run.window.end;
}

/**
 * Time-ordered dispatch with a bounded lead (SinkDefinition.maxShardLeadMs): shard `i` starts only
 * when its end is within the lead of the start of the oldest unfinished shard. Every entry sent so
 * far is then at most `lead` after that start, and every entry still to come is at or after it.
 * A shard longer than the lead runs alone. Without such an exporter, shards start freely.
 */
function shardLead(config: Config, todo: ShardSpec[], done: Map<number, ShardOutcome>) {
  const leadMs = maxShardLeadMs(config.logExporters);
  let waiters: (() => void)[] = [];
  return {
    mayStart(i: number): boolean {
      if (leadMs === undefined) return true;
      const oldest = todo.find((s, j) => j < i && !done.has(s.index));
      if (!oldest) return true; // the oldest unfinished shard itself always runs
      return tsToMicros(todo[i]!.hi.ts) - tsToMicros(oldest.lo.ts) <= leadMs * 1000;
    },
    changed: () => new Promise<void>((resolve) => waiters.push(resolve)),
    notify(): void {
      const w = waiters;
      waiters = [];
      for (const resolve of w) resolve();
    },
  };
}

export function addOutcome(report: RunReport, outcome: ShardOutcome): void {
  report.rows += outcome.rows;
  report.badRows += outcome.badRows ?? 0;
  report.oldestSnapshotMs = Math.max(report.oldestSnapshotMs, outcome.snapshotHeldMs ?? 0);
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

