import { knobs } from '../../core/knobs.js';
import { randomUUID } from 'node:crypto';
import { RunError } from '../../core/errors.js';
import type { Config } from '../../shard/config.js';
import type { Bound } from '../../core/keyset.js';
import { computeWindow, emptyWindowReason } from '../../plan/window.js';
import { SourceSession } from '../../source/session.js';
import { describeTable } from '../../source/table.js';
import { checkpointOffset } from '../../state/checkpoint.js';
import { createStateStore } from '../../state/create.js';
import type { RunManifest, ShardOutcome, StateStore } from '../../state/types.js';
import { addOutcome } from '../run.js';
import { checkExporters, planWindow } from '../runner.js';
import { emptyReport, type RunOptions, type RunReport } from '../report.js';
import { StopControl } from '../stop.js';
import { checkDistributedConfig, openQueue, type Queue } from './boss.js';
import { ShardFence } from './fence.js';
import { jobsChannel, shardDoneChannel, shardJobId, type ShardJobData } from '../../state/distributed_names.js';
import { Wakeup } from './wakeup.js';
import { sourceTarget } from '../../source/connection.js';
import { shardJobStates } from './jobs.js';
import { shardTimeoutWarning } from './shard_timeout.js';
import { currentSnapshot, LateCheck, lateRun, nextReads, type Ledger } from '../late_rows.js';
import { horizonStart } from '../../shard/late_check.js';

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
  checkDistributedConfig(config);
  const stop = o.stop ?? new StopControl({ maxDurationMs: config.maxDurationMs, stopGraceMs: config.stopGraceMs });
  stop.arm();
  const main = await SourceSession.open(config.source, 'coordinator');
  let store: StateStore | null = null;
  let queue: Queue | null = null;
  let opening: Promise<Queue> | null = null;
  let doneWakeup: Promise<Wakeup> | null = null;
  let lateCheck: LateCheck | null = null;
  // --work: a worker in this process, stopped when the coordinator is done or told to stop.
  const workerStop = new StopControl({ maxDurationMs: null, stopGraceMs: config.stopGraceMs });
  const untrackWorker = stop.track(() => workerStop.request(stop.reason ?? 'SIGTERM'));
  // (Assigned in startOwnWorker below; the cast keeps TypeScript from narrowing it to null here.)
  let working = null as Promise<unknown> | null;
  const worker = { failure: null as unknown };
  try {
    const table = await describeTable(main.current(), config.source);
    store = await createStateStore(config, main);
    await store.open();
    const stateTable = config.state.type === 'postgres' ? config.state.table : '';
    const fence = new ShardFence(main, stateTable, config.offsetKey);
    await fence.ensure();
    await checkExporters(config);
    // pg-boss's start and queue set-up, and the LISTEN for finished shards, need no plan: they
    // run while this process plans, rather than after (a fixed cost of every distributed run).
    opening = openQueue(config, o.log, 2);
    opening.catch(() => {});
    doneWakeup = Wakeup.listen(sourceTarget(config.source), shardDoneChannel(stateTable, config.offsetKey), o.log);
    const state = await store.load();
    report.offsetBefore = state.offset;
    report.offsetAfter = state.offset;
    if (state.offset) o.observer?.offset(state.offset);
    const ledger: Ledger = { reads: state.reads, horizonStart: await main.run((c) => horizonStart(c, config)) };
    let run = state.run;
    const resumed = run !== null;
    if (!run) {
      // Taken before planning: if the window plans no shards, this is the read that covered it.
      const snapshot = ledger.horizonStart === null ? undefined : await main.run((c) => currentSnapshot(c));
      const window = o.fixedWindow ?? (await main.run((c) => computeWindow(c, state.offset, config.lookbackPeriod, config.safetyLag)));
      if (!window) {
        o.log.info({ offset: state.offset, reason: await main.run((c) => emptyWindowReason(c, state.offset, config.lookbackPeriod, config.safetyLag)) }, 'nothing to export: the window is empty');
        lateCheck = state.offset && !o.fixedWindow ? LateCheck.start(config, table, ledger, Infinity, report, o.log, null) : null;
        if (state.offset && lateCheck) await catchUp(state.offset, lateCheck);
        return report;
      }
      const planStarted = Date.now();
      const plan = await main.run((c) => planWindow(c, table, config, window, true));
      report.planningMs += Date.now() - planStarted;
      run = { runId: randomUUID(), createdAt: new Date().toISOString(), kind: 'window', window: { start: window.start, end: window.end }, totalRows: plan.totalRows, shards: plan.shards, snapshot };
      o.log.info({ runId: run.runId, start: window.start, end: window.end, rows: plan.totalRows, shards: plan.shards.length }, 'planned (distributed)');
      await store.beginRun(run);
    } else {
      o.log.info({ runId: run.runId, done: state.done.size, shards: run.shards.length }, 'resuming an unfinished run (distributed)');
    }
    // A shard that may outlive its job's expiry is run again while still running: say so up front.
    const tooLong = shardTimeoutWarning(config, run.shards.filter((x) => !state.done.has(x.index)));
    if (tooLong) o.log.warn({ runId: run.runId }, tooLong);
    queue = await opening;
    const wake = await doneWakeup;
    o.log.debug({ runId: run.runId }, 'queue open');
    const q = queue;
    const s = store;
    await enqueue(q, config, run, state.done);
    o.log.debug({ runId: run.runId, shards: run.shards.length - state.done.size }, 'shards enqueued');
    if (!d.wait) {
      o.log.info({ runId: run.runId, shards: run.shards.length, done: state.done.size }, 'enqueued; not waiting (a later run --distributed finalizes the offset)');
      report.runs.push({ runId: run.runId, kind: run.kind ?? 'window', resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 });
      report.status = 'partial';
      return report;
    }
    // Late rows: the ranges of earlier runs inside the horizon (where this run's shards never
    // read) are checked while the workers export, on a session of the coordinator's own (or, with
    // none to spare, once the window is done), as a local run does; any rows committed into them
    // after their read go out as a late run once the offset is final, through the same queue,
    // workers and fencing. The ranges just exported are the next run's to check. A resumed late
    // run needs no second check.
    lateCheck = run.kind !== 'late' && !o.fixedWindow ? LateCheck.start(config, table, ledger, Infinity, report, o.log, null) : null;
    await startOwnWorker();
    if (!(await waitForShards(config, o, q, s, fence, wake, ledger, run, state.done, resumed, report, stop, worker))) return report;
    if (lateCheck) await catchUp(run.window.end, lateCheck);
    return report;

    /** Exports what the check found as a late run. */
    async function catchUp(offset: Bound, check: LateCheck): Promise<void> {
      const lateStarted = Date.now();
      const late = lateRun(await check.finding(main), offset, report, o.log);
      if (late) {
        await store!.beginRun(late);
        queue ??= await opening!;
        await enqueue(queue, config, late, new Map());
        if (d.wait) {
          await startOwnWorker();
          await waitForShards(config, o, queue, store!, fence, await doneWakeup!, ledger, late, new Map(), false, report, stop, worker);
        }
      }
      report.late.durationMs += Date.now() - lateStarted;
    }

    async function startOwnWorker(): Promise<void> {
      if (!d.work || working) return;
      const { runWorker } = await import('./worker.js');
      // Its exporter counts join this process's metrics; the rows done are counted once, above.
      const own = runWorker(config, { log: o.log, concurrency: config.workers, idleExitMs: null, stop: workerStop, observer: o.observer, pool: o.pool });
      own.catch((err: unknown) => (worker.failure = err));
      working = own;
    }
  } finally {
    untrackWorker();
    workerStop.request('SIGTERM');
    await working?.catch(() => {});
    stop.disarm();
    o.progress.stop();
    report.durationMs = Date.now() - started;
    report.rowsPerSec = report.durationMs > 0 ? Math.round((report.rows / report.durationMs) * 1000) : 0;
    // Opened while planning but not used (an empty window): closed all the same.
    queue ??= opening ? await opening.catch(() => null) : null;
    await queue?.boss.stop({ graceful: false, wait: true, close: true }).catch(() => {});
    await (await doneWakeup?.catch(() => null))?.close();
    await store?.close().catch(() => {});
    await lateCheck?.close();
    await main.end();
  }
}

/**
 * Polls the state tables until every shard of `run` is done, moving the offset over the
 * contiguous finished prefix as shards finish, then ends the run (recording its ranges for the
 * late-row check). False when the run stopped (signal, deadline) before all shards were done.
 */
async function waitForShards(
  config: Config, o: RunOptions, queue: Queue, store: StateStore, fence: ShardFence, wake: Wakeup, ledger: Ledger,
  run: RunManifest, doneBefore: Map<number, ShardOutcome>, resumed: boolean, report: RunReport, stop: StopControl, worker: { failure: unknown },
): Promise<boolean> {
  const entry = { runId: run.runId, kind: run.kind ?? 'window', resumed, window: run.window, shards: run.shards.length, shardsExportedNow: 0, rows: 0 };
  report.runs.push(entry);
  const counted = new Set(doneBefore.keys());
  const todo = run.shards.filter((s) => !counted.has(s.index));
  const expected = todo.reduce((sum, x) => sum + x.estimatedRows, 0);
  o.progress.begin(expected, todo.length);
  o.observer?.planned(expected);
  let offset: Bound = checkpointOffset(run, doneBefore);
  let done = doneBefore;
  for (;;) {
    done = await fence.outcomes(run.runId);
    for (const [index, outcome] of done) {
      if (counted.has(index)) continue;
      counted.add(index);
      addOutcome(report, outcome);
      if (run.kind === 'late') report.late.rows += outcome.rows;
      entry.shardsExportedNow++;
      entry.rows += outcome.rows;
      o.progress.shardFinished(index, outcome.rows);
      o.observer?.shardRecorded?.(outcome.rows);
    }
    const next = checkpointOffset(run, done);
    if (next.ts !== offset.ts || next.key !== offset.key) {
      offset = next;
      await fence.saveOffset(offset);
      report.offsetAfter = offset;
      o.observer?.offset(offset);
    }
    if (done.size === run.shards.length) {
      o.log.debug({ runId: run.runId }, 'all shards done');
      o.observer?.shardStates?.({ done: done.size, running: 0, failed: 0, queued: 0 });
      break;
    }
    // Without its own worker a --work coordinator could wait for ever: its failure is the run's.
    if (worker.failure !== null) throw worker.failure;
    const jobs = (await shardJobStates(queue.boss.getDb(), queue.settings.schema, queue.name, run, config.offsetKey)).filter((j) => !done.has(j.shardIndex));
    const failed = jobs.filter((j) => j.state === 'failed');
    const running = jobs.filter((j) => j.state === 'active').length;
    const dead = jobs.filter((j) => j.state === 'failed' || j.state === 'cancelled').length;
    o.observer?.shardStates?.({ done: done.size, running, failed: dead, queued: run.shards.length - done.size - running - dead });
    // A job completed while its shard is not done: a stale worker completed the job id while a
    // newer attempt was running it. Once that attempt's claim is older than the shard timeout it is
    // presumed dead (a live one stops itself at its expiry), and the shard is sent again.
    const orphaned = new Set(jobs.filter((j) => j.state === 'completed').map((j) => j.shardIndex));
    if (orphaned.size > 0) {
      const expired = Date.now() - queue.settings.shardTimeoutMs;
      const stale = (await fence.claims(run.runId)).filter((c) => orphaned.has(c.shardIndex) && Date.parse(c.claimedAt) < expired).map((c) => c.shardIndex);
      if (stale.length > 0) {
        o.log.warn({ runId: run.runId, shards: stale }, 'shard jobs completed by a stale worker while their shards are unfinished; sending them again');
        await enqueue(queue, config, run, done, new Set(stale));
      }
    }
    if (failed.length > 0) {
      const names = failed.map((f) => `shard ${f.shardIndex}${f.error ? ` (${f.error})` : ''}`).join('; ');
      throw new RunError(`${names} failed on every attempt and was dead-lettered; the offset stays at the last contiguous finished shard and a rerun retries it`);
    }
    if (stop.reason !== null) {
      report.stopped = { reason: stop.reason, shardsLeft: run.shards.length - done.size, shardsTotal: run.shards.length };
      report.status = 'partial';
      return false;
    }
    // A worker's done commit notifies: the last shard is seen at once, not up to a poll later.
    await wake.wait(queue.settings.pollIntervalMs);
  }
  const reads = nextReads(config, run, done, ledger);
  await store.endRun(run.runId, run.window.end, reads);
  ledger.reads = reads;
  await fence.forgetClaims(run.runId);
  report.offsetAfter = run.window.end;
  o.observer?.offset(run.window.end);
  return true;
}

/**
 * One job per unfinished shard, with a deterministic id: sending it again is a no-op. A job that
 * exhausted its retries in an earlier attempt of this run is enqueued afresh.
 */
async function enqueue(queue: Queue, config: Config, run: RunManifest, done: Map<number, ShardOutcome>, only?: Set<number>): Promise<void> {
  // Tests only: hang after sending this many jobs, so a kill lands mid-enqueue at a known point.
  const hangAfter = knobs.hangAfterEnqueued;
  let sentNow = 0;
  for (const shard of run.shards) {
    if (only && !only.has(shard.index)) continue;
    if (sentNow++ >= hangAfter) await new Promise(() => setInterval(() => {}, 60_000));
    if (done.has(shard.index)) continue;
    const id = shardJobId(config.offsetKey, run.runId, shard.index);
    const data: ShardJobData = { runId: run.runId, shardIndex: shard.index };
    const sent = await queue.boss.send(queue.name, data, { id, singletonKey: id });
    if (sent !== null) continue;
    // The job exists: queued or running, it is left alone; dead-lettered by an earlier attempt of
    // this run (or completed, below), it is replaced by a fresh one with today's retry and expiry settings.
    const job = await queue.boss.getJobById(queue.name, id);
    // (Completed without the shard done: a stale worker completed the job id while a newer attempt
    // ran it, and that attempt then died. Nothing would ever retry it.)
    if (job?.state === 'failed' || job?.state === 'cancelled' || job?.state === 'completed') {
      await queue.boss.deleteJob(queue.name, id);
      await queue.boss.send(queue.name, data, { id, singletonKey: id });
    }
  }
  // Idle workers fetch at once instead of at their next poll.
  await queue.boss.getDb().executeSql('SELECT pg_notify($1, $2)', [jobsChannel(queue.name), run.runId]);
}
