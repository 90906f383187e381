import { knobs } from '../../core/knobs.js';
import os from 'node:os';
import type { Piscina } from 'piscina';
import type PgBoss from 'pg-boss';
import { errorMessage } from '../../core/errors.js';
import { redact } from '../../core/secrets.js';
import { lateRowsEnabled, type Config } from '../../shard/config.js';
import { SourceSession } from '../../source/session.js';
import { describeTable, type SourceTable } from '../../source/table.js';
import type { Logger } from '../../core/log.js';
import { createShardPool, destroyShardPool } from '../worker_pool.js';
import { attemptShardOnPool } from '../shard_attempt.js';
import { acksInShard } from '../../sinks/registry.js';
import { ShardPace, StopControl } from '../stop.js';
import { orderedForAge, snapshotAgeWarning } from '../../shard/snapshot_age.js';
import { PREFIX_RESENT, resumableAcks } from '../../shard/acked_prefix.js';
import { checkDistributedConfig, openQueue } from './boss.js';
import { ShardFence, StaleAttemptError } from './fence.js';
import { jobsChannel, type ShardJobData } from '../../state/distributed_names.js';
import { Wakeup } from './wakeup.js';
import type { ShardOutcome } from '../../state/types.js';
import type { RunObserver } from '../observer.js';

export interface WorkerOptions {
  log: Logger;
  /** Shards exported at once by this process (its piscina pool's threads). */
  concurrency: number;
  /** Exit once no shard has been running for this long; null = run until stopped. */
  idleExitMs: number | null;
  /** A signal asks the worker to stop taking jobs and to stop its running shards. */
  stop: StopControl;
  /** Names this process in the claims table and `status`; default host:pid. */
  workerId?: string;
  /** This process's metrics: its shards' rows, bytes, requests and durations. */
  observer?: RunObserver;
  /** A shard pool the caller started and ends (RunOptions.pool); by default the worker starts its own. */
  pool?: Piscina;
}

export interface WorkerReport {
  workerId: string;
  shardsDone: number;
  rows: number;
  /** Attempts that lost their shard to a newer attempt: their result was dropped. */
  staleAttempts: number;
}

/**
 * `logship worker`: drains the shard jobs of any run for this offsetKey. Each shard is exported by
 * the same task a local run uses, on this process's own piscina pool; it is claimed (fenced) in
 * the state database first and recorded done only while this attempt still holds it.
 */
export async function runWorker(config: Config, o: WorkerOptions): Promise<WorkerReport> {
  const settings = checkDistributedConfig(config);
  const stateTable = config.state.type === 'postgres' ? config.state.table : '';
  const report: WorkerReport = { workerId: o.workerId ?? `${os.hostname()}:${process.pid}`, shardsDone: 0, rows: 0, staleAttempts: 0 };
  const ageWarning = snapshotAgeWarning(config);
  if (ageWarning) o.log.warn(ageWarning);
  // This process's shards so far: how long the next may take (see orderedForAge).
  const pace = new ShardPace();
  const db = await SourceSession.open(config.source, 'worker');
  const pool = o.pool ?? createShardPool(config, o.concurrency, o.log);
  let boss: PgBoss | null = null;
  let jobsWakeup: Wakeup | null = null;
  try {
    const table = await describeTable(db.current(), config.source);
    const fence = new ShardFence(db, stateTable, config.offsetKey);
    await fence.ensure();
    const queue = await openQueue(config, o.log, o.concurrency + 2);
    boss = queue.boss;
    let active = 0;
    const workerIds: string[] = [];
    let lastBusy = Date.now();
    const handle = async ([job]: PgBoss.Job<ShardJobData>[]): Promise<void> => {
      if (!job) return;
      active++;
      try {
        await exportJob(config, table, fence, pool, job, report, o, pace);
      } catch (err) {
        o.log.warn({ jobId: job.id, shard: job.data.shardIndex, error: redact(errorMessage(err)) }, 'shard failed; the queue retries it');
        throw err;
      } finally {
        active--;
        lastBusy = Date.now();
        // pg-boss waits out the rest of the poll interval after each job; with more shards queued
        // that is idle time per shard, so ask for the next job at once (an empty queue still waits).
        if (o.stop.reason === null) for (const id of workerIds) queue.boss.notifyWorker(id);
      }
    };
    const pollingIntervalSeconds = settings.pollIntervalMs / 1000;
    for (let i = 0; i < o.concurrency; i++) workerIds.push(await boss.work<ShardJobData>(queue.name, { batchSize: 1, pollingIntervalSeconds }, handle));
    // A coordinator notifies after enqueueing: idle workers fetch then, not up to a poll later.
    jobsWakeup = await Wakeup.listen(queue.target, jobsChannel(queue.name), o.log, () => {
      if (o.stop.reason === null) for (const id of workerIds) queue.boss.notifyWorker(id);
    });
    o.log.info({ workerId: report.workerId, queue: queue.name, concurrency: o.concurrency }, 'worker started; waiting for shard jobs');
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const idle = active === 0 && o.idleExitMs !== null && Date.now() - lastBusy >= o.idleExitMs;
        if (idle || o.stop.reason !== null) {
          clearInterval(timer);
          resolve();
        }
      }, Math.min(250, settings.pollIntervalMs));
    });
    o.log.info({ ...report, reason: o.stop.reason ?? 'idle' }, 'worker stopping');
    await boss.offWork(queue.name);
    return report;
  } finally {
    // Running shards were told to stop by the StopControl; their jobs fail and are retried.
    await jobsWakeup?.close();
    await boss?.stop({ graceful: true, wait: true, close: true, timeout: 30_000 }).catch(() => {});
    if (!o.pool) await destroyShardPool(pool).catch(() => {});
    await db.end();
  }
}

async function exportJob(
  config: Config, table: SourceTable, fence: ShardFence, pool: Piscina, job: PgBoss.Job<ShardJobData>, report: WorkerReport, o: WorkerOptions, pace: ShardPace,
): Promise<void> {
  const { runId, shardIndex } = job.data;
  const { current, shard, done, snapshot } = await fence.jobShard(runId, shardIndex);
  // A job outliving its run (finished, or reset): nothing left to do; completing it is right.
  if (!current) {
    o.log.info({ jobId: job.id, runId, shard: shardIndex }, 'job of a run that is no longer current; skipped');
    return;
  }
  if (!shard) throw new Error(`run ${runId} has no shard ${shardIndex}`);
  if (done) {
    o.log.info({ runId, shard: shardIndex }, 'shard already done (job delivered again); skipped');
    return;
  }
  const attempt = await fence.claim(runId, shardIndex, report.workerId);
  o.log.info({ runId, shard: shardIndex, attempt, jobId: job.id }, 'shard claimed');
  // Only bounded-duplicates exporters resume inside a shard: the others need no round trip here.
  const stored = config.logExporters.some(acksInShard) ? await fence.acks(runId, shardIndex) : undefined;
  const acks = resumableAcks(stored, shard, snapshot ?? undefined, lateRowsEnabled(config), (exporterId) => o.log.warn({ runId, shard: shardIndex, exporter: exporterId }, PREFIX_RESENT));
  // pg-boss gives up on a handler at the job's expiry and hands the job out again: stop this
  // attempt then too, so a slow but live worker does not go on exporting a shard another now owns.
  // (knobs.noAttemptExpiry, tests only: let a stale attempt run on, to prove the fence stops it.)
  const expiry = knobs.noAttemptExpiry ? null : job.expireInSeconds * 1000;
  const attemptStop = new StopControl({ maxDurationMs: expiry, stopGraceMs: 0 });
  attemptStop.arm();
  const untrack = o.stop.track(() => attemptStop.request(o.stop.reason ?? 'SIGTERM'));
  let outcome: ShardOutcome;
  const started = Date.now();
  try {
    // The task commits the shard itself, fenced on `attempt` (with its delete, when there is one).
    outcome = await attemptShardOnPool(pool, { config, table, shard, runId, acks, attempt, orderedForAge: orderedForAge(config, shard, pace.expectedMs(shard.estimatedRows)) }, {
      progress: () => {},
      read: (rows, bytes) => o.observer?.read?.(rows, bytes),
      delivery: (exporterId, event) => o.observer?.delivery(exporterId, event),
      ack: (exporterId, ack) => fence.saveAck(runId, shardIndex, attempt, exporterId, ack),
      fence: () => fence.check(runId, shardIndex, attempt),
    }, attemptStop);
  } catch (err) {
    if (attemptStop.reason === 'deadline') {
      throw new Error(`shard ${shardIndex} outlived queue.shardTimeout (${job.expireInSeconds} s) and was stopped; raise queue.shardTimeout or lower rowsPerShard`, { cause: err });
    }
    // Superseded (a part refused by the fence, say): the job id now belongs to the newer attempt's
    // retry, and pg-boss fails a job by id whoever runs it. Failing it here would fail the newer
    // attempt's job too, and so on down the line; so the stale attempt ends quietly instead.
    const stale = await fence.check(runId, shardIndex, attempt).then(() => false, (e: unknown) => {
      if (e instanceof StaleAttemptError) return true;
      throw err; // the fence could not be read: fail the job as the export failed
    });
    if (stale) {
      o.log.warn({ runId, shard: shardIndex, attempt, error: redact(errorMessage(err)) }, 'stale attempt stopped by the fence');
      outcome = { rows: 0, deletedRows: null, exporters: [], superseded: true as const };
    } else throw err;
  } finally {
    attemptStop.disarm();
    untrack();
  }
  if (outcome.superseded) {
    report.staleAttempts++;
    o.log.warn({ runId, shard: shardIndex, attempt }, 'stale attempt: a newer attempt holds this shard (this job had expired); its result is not recorded and its parts were removed');
    return;
  }
  report.shardsDone++;
  report.rows += outcome.rows;
  pace.record(outcome.rows, Date.now() - started);
  o.observer?.shardExported?.(outcome, (Date.now() - started) / 1000);
  o.log.info({ runId, shard: shardIndex, attempt, rows: outcome.rows }, 'shard done');
}
