import { randomUUID } from 'node:crypto';
import { RunError } from '../../config/errors.js';
import type { Config } from '../../config/types.js';
import type { Bound } from '../../plan/keyset.js';
import { computeWindow, emptyWindowReason } from '../../plan/window.js';
import { SourceSession } from '../../source/session.js';
import { describeTable } from '../../source/table.js';
import { checkpointOffset } from '../../state/checkpoint.js';
import { createStateStore } from '../../state/create.js';
import type { RunManifest, ShardOutcome, StateStore } from '../../state/types.js';
import { addOutcome, checkExporters, emptyReport, planWindow, type RunOptions, type RunReport } from '../run.js';
import { StopControl } from '../stop.js';
import { checkDistributedConfig, openQueue, type Queue } from './boss.js';
import { ShardFence } from './fence.js';
import { shardJobId, type ShardJobData } from './names.js';
import { failedShardJobs } from './jobs.js';
import { shardTimeoutWarning } from './shard_timeout.js';

/**
 * `run --distributed`: finish or plan a run exactly as a local run does, but instead of exporting
 * the shards here, enqueue one job per unfinished shard and wait while workers drain them, moving
 * the offset over the contiguous finished prefix as shards finish. Holding the offsetKey's lock
 * while it waits keeps a second coordinator (or a local run) out.
 */
export interface DistributedRunOptions {
  /** false (`--no-wait`): enqueue and return; a later `run --distributed` waits and finalizes. */
  wait: boolean;
  /** `--work`: this process also drains the shard jobs (a worker on its own pool, `workers` threads). */
  work?: boolean;
}

export async function runDistributed(config: Config, o: RunOptions, report: RunReport = emptyReport(config), d: DistributedRunOptions = { wait: true }): Promise<RunReport> {
  const started = Date.now();
  const settings = checkDistributedConfig(config);
  const stop = o.stop ?? new StopControl({ maxDurationMs: config.maxDurationMs, stopGraceMs: config.stopGraceMs });
  stop.arm();
  const main = await SourceSession.open(config.source, 'coordinator');
  let store: StateStore | null = null;
  let queue: Queue | null = null;
  // --work: a worker in this process, stopped when the coordinator is done or told to stop.
  const workerStop = new StopControl({ maxDurationMs: null, stopGraceMs: config.stopGraceMs });
  const untrackWorker = stop.track(() => workerStop.request(stop.reason ?? 'SIGTERM'));
  let working: Promise<unknown> | null = null;
  let workerFailure: unknown = null;
  try {
    const table = await describeTable(main.current(), config.source);
    store = createStateStore(config, main);
    await store.open();
    const fence = new ShardFence(main, config.state.type === 'postgres' ? config.state.table : '', config.offsetKey);
    await fence.ensure();
    await checkExporters(config);
    const state = await store.load();
    report.offsetBefore = state.offset;
    report.offsetAfter = state.offset;
    let run = state.run;
    const resumed = run !== null;
    if (!run) {
      const window = o.fixedWindow ?? (await main.run((c) => computeWindow(c, state.offset, config.lookbackPeriod, config.safetyLag)));
      if (!window) {
        o.log.info({ offset: state.offset, reason: await main.run((c) => emptyWindowReason(c, state.offset, config.lookbackPeriod, config.safetyLag)) }, 'nothing to export: the window is empty');
        return report;
      }
      const planStarted = Date.now();
      const plan = await main.run((c) => planWindow(c, table, config, window));
      report.planningMs += Date.now() - planStarted;
      run = { runId: randomUUID(), createdAt: new Date().toISOString(), window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards };
      o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length }, 'planned (distributed)');
      await store.beginRun(run);
    } else {
      o.log.info({ runId: run.runId, done: state.done.size, shards: run.shards.length }, 'resuming an unfinished run (distributed)');
    }
    // A shard that may outlive its job's expiry is run again while still running: say so up front.
    const tooLong = shardTimeoutWarning(config, run.shards.filter((x) => !state.done.has(x.index)));
    if (tooLong) o.log.warn({ runId: run.runId }, tooLong);
    queue = await openQueue(config, o.log, 2);
    await enqueue(queue, config, run, state.done);
    if (!d.wait) {
      o.log.info({ runId: run.runId, shards: run.shards.length, done: state.done.size }, 'enqueued; not waiting (a later run --distributed finalizes the offset)');
      report.runs.push({ runId: run.runId, kind: 'window', resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 });
      report.status = 'partial';
      return report;
    }
    if (d.work) {
      const { runWorker } = await import('./worker.js');
      working = runWorker(config, { log: o.log, concurrency: config.workers, idleExitMs: null, stop: workerStop });
      working.catch((err: unknown) => (workerFailure = err));
    }
    const entry = { runId: run.runId, kind: 'window' as const, resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 };
    report.runs.push(entry);
    const counted = new Set(state.done.keys());
    const todo = run.shards.filter((s) => !counted.has(s.index));
    o.progress.begin(todo.reduce((s, x) => s + x.estimatedRows, 0), todo.length);
    let offset: Bound = checkpointOffset(run, state.done);
    for (;;) {
      const done = await fence.outcomes(run.runId);
      for (const [index, outcome] of done) {
        if (counted.has(index)) continue;
        counted.add(index);
        addOutcome(report, outcome);
        entry.shardsExportedNow++;
        entry.rows += outcome.rows;
        o.progress.shardFinished(index, outcome.rows);
      }
      const next = checkpointOffset(run, done);
      if (next.ts !== offset.ts || next.key !== offset.key) {
        offset = next;
        await fence.saveOffset(offset);
        report.offsetAfter = offset;
        o.observer?.offset(offset);
      }
      if (done.size === run.shards.length) break;
      // Without its own worker a --work coordinator could wait for ever: its failure is the run's.
      if (workerFailure !== null) throw workerFailure;
      const failed = await failedShardJobs(queue.boss.getDb(), settings.schema, queue.name, run, config.offsetKey, done);
      if (failed.length > 0) {
        const names = failed.map((f) => `shard ${f.shardIndex}${f.error ? ` (${f.error})` : ''}`).join('; ');
        throw new RunError(`${names} failed on every attempt and was dead-lettered; the offset stays at the last contiguous finished shard and a rerun retries it`);
      }
      if (stop.reason !== null) {
        report.stopped = { reason: stop.reason, shardsLeft: run.shards.length - done.size, shardsTotal: run.shards.length };
        report.status = 'partial';
        return report;
      }
      await new Promise((r) => setTimeout(r, settings.pollIntervalMs));
    }
    // Late-row ranges are not tracked in distributed mode yet: the stored ones are kept as they are.
    await store.endRun(run.runId, run.window.end, state.reads);
    await fence.forgetClaims(run.runId);
    report.offsetAfter = run.window.end;
    o.observer?.offset(run.window.end);
    return report;
  } finally {
    untrackWorker();
    workerStop.request('SIGTERM');
    await working?.catch(() => {});
    stop.disarm();
    o.progress.stop();
    report.durationMs = Date.now() - started;
    report.rowsPerSec = report.durationMs > 0 ? Math.round((report.rows / report.durationMs) * 1000) : 0;
    await queue?.boss.stop({ graceful: false, wait: true, close: true }).catch(() => {});
    await store?.close().catch(() => {});
    await main.end();
  }
}

/**
 * One job per unfinished shard, with a deterministic id: sending it again is a no-op. A job that
 * exhausted its retries in an earlier attempt of this run is enqueued afresh.
 */
async function enqueue(queue: Queue, config: Config, run: RunManifest, done: Map<number, ShardOutcome>): Promise<void> {
  // Tests only: hang after sending this many jobs, so a kill lands mid-enqueue at a known point.
  const hangAfter = Number(process.env.LOGSHIP_TEST_HANG_AFTER_ENQUEUED ?? Infinity);
  let sentNow = 0;
  for (const shard of run.shards) {
    if (sentNow++ >= hangAfter) await new Promise(() => setInterval(() => {}, 60_000));
    if (done.has(shard.index)) continue;
    const id = shardJobId(config.offsetKey, run.runId, shard.index);
    const data: ShardJobData = { runId: run.runId, shardIndex: shard.index };
    const sent = await queue.boss.send(queue.name, data, { id, singletonKey: id });
    if (sent !== null) continue;
    // The job exists: queued or running, it is left alone; dead-lettered by an earlier attempt of
    // this run, it is replaced by a fresh one with today's retry and expiry settings.
    const job = await queue.boss.getJobById(queue.name, id);
    if (job?.state === 'failed' || job?.state === 'cancelled') {
      await queue.boss.deleteJob(queue.name, id);
      await queue.boss.send(queue.name, data, { id, singletonKey: id });
    }
  }
}
