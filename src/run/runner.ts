import { RunReport, RunOptions } from './report.js';
import type { Piscina } from 'piscina';
import type pg from 'pg';
import type { Config } from '../shard/config.js';

import { planShards, type ShardPlan } from '../plan/shards.js';
import type { ExportWindow } from '../plan/window.js';
import type { SourceTable } from '../source/table.js';
import { createExporter } from '../sinks/registry.js';
import type { Logger } from '../core/log.js';

import { filtersOf } from '../shard/config.js';
import { StopControl } from './stop.js';
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';

import { tableScanWarning } from '../plan/shards.js';
import { computeWindow, emptyWindowReason } from '../plan/window.js';
import { affordableWorkers, freeConnections } from '../source/connection_budget.js';
import { passRawBytesFromSqlAscii } from '../source/connection.js';
import { SourceSession } from '../source/session.js';
import { describeTable } from '../source/table.js';
import { createStateStore } from '../state/create.js';
import type { RunManifest, StateStore } from '../state/types.js';

import { executeRun } from './execute.js';
import { currentSnapshot, LateCheck, lateRun, type Ledger } from './late_rows.js';
import { horizonStart } from '../shard/late_check.js';

import { createShardPool, destroyShardPool } from './worker_pool.js';
import { snapshotAgeWarning } from '../shard/snapshot_age.js';

/** What one cycle is told: where to log and report, and when to stop. */
export type CycleOptions = Pick<RunOptions, 'log' | 'progress' | 'observer' | 'fixedWindow'> & { stop: StopControl };

/**
 * The opened parts of an export, which live as long as the process: the main session (it
 * reconnects by itself after a source restart), the described table, the state store holding the
 * offsetKey's lock, and the shard pool. `run` opens one, runs one cycle and closes it;
 * `run --follow` runs a cycle every interval on the same one, so a cycle pays no process start,
 * no pool start, no connection and no lock.
 */
export class Runner {
  private constructor(
    readonly config: Config,
    private readonly main: SourceSession,
    private readonly table: SourceTable,
    private readonly store: StateStore,
    private readonly pool: Piscina,
    private readonly ownPool: boolean,
    /** Sessions the server had free beyond the workers at open: whether a late check may take its own. */
    private readonly spareSessions: number,
  ) {}

  /**
   * The worker threads boot (Node's bootstrap, then their modules: ~0.2 s) while this thread
   * connects, checks and reads the table, instead of after. A role short of sessions runs fewer
   * shards at once than there are threads; the spare threads idle. Whatever fails here, what was
   * opened is closed (a refused run ends the pool only once its threads have loaded).
   */
  static async open(wanted: Config, o: { log: Logger; pool?: Piscina; follow?: boolean }): Promise<Runner> {
    const ownPool = o.pool === undefined;
    const pool = o.pool ?? createShardPool(wanted, wanted.workers, o.log, { follow: o.follow });
    const main = await SourceSession.open(wanted.source, 'main').catch(async (err: unknown) => {
      if (ownPool) await destroyShardPool(pool).catch(() => {});
      throw err;
    });
    let store: StateStore | null = null;
    try {
      const budget = await freeConnections(main.current());
      const workers = affordableWorkers(budget, wanted.workers, (message) => o.log.warn(message));
      const config = workers === wanted.workers ? wanted : { ...wanted, workers };
      const ageWarning = snapshotAgeWarning(config);
      if (ageWarning) o.log.warn(ageWarning);
      await passRawBytesFromSqlAscii(main.current());
      const table = await describeTable(main.current(), config.source);
      store = await createStateStore(config, main);
      await store.open();
      await checkExporters(config);
      // --follow checks for late rows on the main session: a cycle's window is small, and a
      // session of its own beside it would be a new connection every cycle.
      const spare = o.follow ? 0 : (budget?.free ?? Infinity) - workers;
      return new Runner(config, main, table, store, pool, ownPool, spare);
    } catch (err) {
      await store?.close().catch(() => {});
      if (ownPool) await destroyShardPool(pool).catch(() => {});
      await main.end();
      throw err;
    }
  }

  /**
   * One cycle: finish any run a crash or a stop left behind, then plan [offset, now - lag) into
   * shards, store the manifest, export the shards and move the offset over the finished prefix,
   * then catch up rows committed late into earlier ranges. Fills `report` as it goes, so a failed
   * cycle still reports what it got done.
   */
  async cycle(o: CycleOptions, report: RunReport): Promise<RunReport> {
    const { config, main, table, store, pool } = this;
    const stop = o.stop;
    stop.arm();
    let lateCheck: LateCheck | null = null;
    try {
      // Read every cycle: the stored state is the truth (a stopped cycle left a manifest behind).
      const state = await store.load();
      report.offsetBefore = state.offset;
      if (state.offset) o.observer?.offset(state.offset);
      report.offsetAfter = state.offset;

      const ledger: Ledger = { reads: state.reads, horizonStart: await main.run((c) => horizonStart(c, config)) };
      let offset = state.offset;
      if (state.run) {
        o.log.info({ runId: state.run.runId, done: state.done.size, shards: state.run.shards.length }, 'resuming an unfinished run before planning new work');
        offset = await executeRun({ config, table, store, pool, run: state.run, done: state.done, acks: state.acks, resumed: true, report, out: o, stop, ledger });
      }
      if (report.stopped || !stop.mayStart(null)) return stopEarly(report, stop);

      // Taken before planning: if the window plans no shards, this is the read that covered it.
      const snapshot = ledger.horizonStart === null ? undefined : await main.run((c) => currentSnapshot(c));
      const window = o.fixedWindow ?? (await main.run((c) => computeWindow(c, offset, config.lookbackPeriod, config.safetyLag)));
      if (!window) {
        lateCheck = o.fixedWindow ? null : LateCheck.start(config, table, ledger, this.spareSessions, report, o.log, null);
        o.log.info({ offset, reason: await main.run((c) => emptyWindowReason(c, offset, config.lookbackPeriod, config.safetyLag)) }, 'nothing to export: the window is empty');
      } else {
        const planStarted = Date.now();
        const plan = await main.run((c) => planWindow(c, table, config, window));
        report.planningMs += Date.now() - planStarted;
        lateCheck = o.fixedWindow ? null : LateCheck.start(config, table, ledger, this.spareSessions, report, o.log, plan);
        const run: RunManifest = {
          runId: randomUUID(), createdAt: new Date().toISOString(), kind: 'window',
          window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards, snapshot,
        };
        o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length, method: plan.method, rowsEstimated: plan.method === 'sample' || plan.method === 'statistics', shardReads: plan.reads, workers: config.workers, workersReason: config.workersReason }, 'planned');
        const scanWarning = tableScanWarning(table, plan, { ...config, autoShardSize: !config.rowsPerShardSet });
        if (scanWarning) o.log.warn(scanWarning);
        // A manifest is what a stop or a crash resumes; an empty one has nothing to resume, and
        // skipping it leaves an idle cycle one state write (the offset's) instead of two.
        if (run.shards.length > 0) await store.beginRun(run);
        offset = await executeRun({ config, table, store, pool, run, done: new Map(), acks: new Map(), resumed: false, report, out: o, stop, ledger, lateCheck });
      }
      if (offset && lateCheck) {
        const lateStarted = Date.now();
        const late = lateRun(await lateCheck.finding(main), offset, report, o.log);
        if (late) {
          await store.beginRun(late);
          await executeRun({ config, table, store, pool, run: late, done: new Map(), acks: new Map(), resumed: false, report, out: o, stop, ledger });
        }
        report.late.durationMs += Date.now() - lateStarted;
      }
      if (report.stopped || (stop.reason !== null && stop.reason !== 'deadline')) return stopEarly(report, stop);
      return report;
    } finally {
      stop.disarm();
      o.progress.stop();
      await lateCheck?.close();
    }
  }

  /** Ends what `open` opened. close() saves pending object-store state: its failure must not pass silently. */
  async close(log: Logger, report?: RunReport): Promise<void> {
    const closing = this.store.close();
    if (this.ownPool) await destroyShardPool(this.pool).catch(() => {});
    await closing.catch((err: unknown) => log.error({ error: redact(errorMessage(err)) }, 'saving the state at exit failed; the next run redoes the shards finished since the last save'));
    if (report && this.store.requests) report.stateRequests = { ...this.store.requests };
    await this.main.end();
  }
}

/** A stop before all work was done: status partial; a signal is reported even with nothing left. */
function stopEarly(report: RunReport, stop: StopControl): RunReport {
  report.status = 'partial';
  report.stopped ??= { reason: stop.reason ?? 'deadline', shardsLeft: 0, shardsTotal: report.runs.at(-1)?.shards ?? 0 };
  return report;
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
