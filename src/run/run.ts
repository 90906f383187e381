import { randomUUID } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type pg from 'pg';
import { errorMessage, RunError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { tsToMicros, type Bound } from '../plan/keyset.js';
import { planShards, type ShardPlan, type ShardSpec } from '../plan/shards.js';
import { computeWindow, type ExportWindow } from '../plan/window.js';
import { connectSource } from '../source/connection.js';
import { describeTable, type SourceTable } from '../source/table.js';
import { createExporter, maxShardLeadMs, writesFiles } from '../sinks/registry.js';
import { templateGranularity, type Granularity } from '../sinks/naming.js';
import { checkpointOffset } from '../state/checkpoint.js';
import { createStateStore } from '../state/create.js';
import type { RunManifest, ShardAcks, ShardOutcome, StateStore } from '../state/types.js';
import { redact } from '../config/secrets.js';
import type { Logger } from '../util/log.js';
import { workerFile } from '../util/paths.js';
import type { RunObserver } from './observer.js';
import { Progress } from './progress.js';
import { shardRetryDecision, withRetries } from './retry.js';
import { filtersOf, type ShardTaskInput } from './shard_task.js';
import type { MainMessage, WorkerMessage } from './shard_channel.js';
import type { InShardAck } from '../sinks/delivery/types.js';

export interface ExporterTotals { rows: number; files: number; bytes: number; removedStaleParts: number; deadLettered: number }

export interface RunReport {
  status: 'ok' | 'failed';
  error?: string;
  offsetKey: string;
  offsetBefore: Bound | null;
  offsetAfter: Bound | null;
  runs: { runId: string; resumed: boolean; window: { start: Bound; end: Bound }; shards: number; shardsExportedNow: number; rows: number }[];
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
  exporters: Record<string, ExporterTotals>;
}

export interface RunOptions {
  log: Logger;
  progress: Progress;
  /** Export exactly this window instead of [offset, now - lag) (used by `tune`). */
  fixedWindow?: ExportWindow;
  /** Metrics: told of the plan, each shard, the offset and each request's outcome. */
  observer?: RunObserver;
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
    rows: 0, files: 0, bytes: 0, deletedRows: config.delete ? 0 : null, durationMs: 0, rowsPerSec: 0, peakRssBytes: 0, cpuSeconds: 0, planningMs: 0, exporters: {},
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
    const table = await describeTable(main, config.source);
    store = createStateStore(config, main);
    await store.open();
    await checkExporters(config);
    const state = await store.load();
    report.offsetBefore = state.offset;
    if (state.offset) o.observer?.offset(state.offset);
    report.offsetAfter = state.offset;
    pool = new Piscina({ filename: workerFile(), minThreads: config.workers, maxThreads: config.workers, idleTimeout: 60_000 });

    let offset = state.offset;
    if (state.run) {
      o.log.info({ runId: state.run.runId, done: state.done.size, shards: state.run.shards.length }, 'resuming an unfinished run before planning new work');
      offset = await executeRun(config, table, store, pool, state.run, state.done, state.acks, true, report, o);
    }

    const window = o.fixedWindow ?? (await computeWindow(main, offset, config.lookbackPeriod, config.safetyLag));
    if (!window) {
      o.log.info({ offset }, 'nothing to export: the window is empty (offset is within the safety lag of now)');
    } else {
      const planStarted = Date.now();
      const plan = await planWindow(main, table, config, window);
      report.planningMs += Date.now() - planStarted;
      const run: RunManifest = {
        runId: randomUUID(), createdAt: new Date().toISOString(),
        window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards,
      };
      o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length, method: plan.method }, 'planned');
      await store.beginRun(run);
      await executeRun(config, table, store, pool, run, new Map(), new Map(), false, report, o);
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
  done: Map<number, ShardOutcome>, acks: ShardAcks, resumed: boolean, report: RunReport, o: RunOptions,
): Promise<Bound> {
  const todo = run.shards.filter((s) => !done.has(s.index));
  const entry = { runId: run.runId, resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 };
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
  const lead = shardLead(config, todo, done);

  /** One attempt on a worker thread, with its own progress channel (a port transfers only once). */
  const attemptShard = async (shard: ShardSpec): Promise<ShardOutcome> => {
    const channel = new MessageChannel();
    channel.port1.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') o.progress.update(m.shard, m.rows);
      else if (m.type === 'delivery') o.observer?.delivery(m.exporterId, m.event);
      else if (m.type === 'flush') channel.port1.postMessage({ type: 'acked', id: m.id } satisfies MainMessage);
      else {
        recordAck(shard.index, m.exporterId, m.ack).then(
          () => channel.port1.postMessage({ type: 'acked', id: m.id } satisfies MainMessage),
          (err: unknown) => channel.port1.postMessage({ type: 'ack-failed', id: m.id, error: redact(errorMessage(err)) } satisfies MainMessage),
        );
      }
    });
    try {
      const input: ShardTaskInput = { config, table, shard, runId: run.runId, progress: channel.port2, acks: acks.get(shard.index) };
      return await pool.run(input, { transferList: [channel.port2] });
    } finally {
      channel.port1.close();
    }
  };

  const runOne = async (): Promise<void> => {
    while (failure === null && next < todo.length) {
      if (!lead.mayStart(next)) {
        await lead.changed();
        continue;
      }
      const shard = todo[next++]!;
      try {
        const shardStarted = Date.now();
        const outcome = await withRetries(
          { attempts: config.shardAttempts, firstDelayMs: 1000, maxDelayMs: 30_000 },
          (err) => failure === null && shardRetryDecision(err) === 'retry',
          () => attemptShard(shard),
          (err, n) => o.log.warn({ shard: shard.index, attempt: n, error: redact(errorMessage(err)) }, 'shard failed; retrying it (a shard rerun overwrites its own parts)'),
        );
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
        o.log.debug({ shard: shard.index, rows: outcome.rows }, 'shard done');
      } catch (err) {
        failure ??= err;
      }
      lead.notify();
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.workers, todo.length) }, runOne));
  if (failure !== null) {
    throw new RunError(`${errorMessage(failure)}; the offset stays at the last fully exported shard and a rerun resumes from there`, { cause: failure });
  }
  await store.endRun(run.runId, run.window.end);
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

function addOutcome(report: RunReport, outcome: ShardOutcome): void {
  report.rows += outcome.rows;
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

