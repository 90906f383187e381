/**
 * Running one manifest's shards on the pool and moving the offset over the finished prefix:
 * the same for a window, a resumed run and a late catch-up, for `run` and for each `--follow` cycle.
 */
import type { Piscina } from 'piscina';
import { errorMessage, RunError } from '../core/errors.js';
import type { Config } from '../shard/config.js';
import { tsToMicros, type Bound } from '../core/keyset.js';
import type { ShardSpec } from '../core/keyset.js';
import type { SourceTable } from '../source/table.js';
import { maxShardLeadMs } from '../sinks/registry.js';
import { checkpointOffset } from '../state/checkpoint.js';
import type { ReadRange, RunManifest, ShardAcks, ShardOutcome, StateStore } from '../state/types.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { redact } from '../core/secrets.js';
import { kindOf } from '../core/errors.js';
import { LateCheck, nextReads, type Ledger } from './late_rows.js';
import type { RunOptions, RunReport } from './report.js';
import { attemptShardOnPool } from './shard_attempt.js';
import { shardRetryDecision, withRetries } from '../core/retry.js';
import { ShardPace, type StopControl } from './stop.js';
import { ShardStoppedError } from '../core/errors.js';
import { orderedForAge } from '../shard/snapshot_age.js';
import { PREFIX_RESENT, resumableAcks } from '../shard/acked_prefix.js';

/**
 * Runs the manifest's unfinished shards, at most `workers` at a time. The first failure stops new
 * shards from starting; shards already running may still finish and be checkpointed.
 */
export interface RunExecution {
  config: Config;
  table: SourceTable;
  store: StateStore;
  pool: Piscina;
  run: RunManifest;
  /** This run's shards already done (a resumed run), with their outcomes; filled as shards finish. */
  done: Map<number, ShardOutcome>;
  /** In-shard acknowledgements of unfinished shards (bounded-duplicates exporters). */
  acks: ShardAcks;
  resumed: boolean;
  report: RunReport;
  out: Pick<RunOptions, 'log' | 'progress' | 'observer'>;
  stop: StopControl;
  ledger: Ledger;
  /** The late-row check the window's shards carry in their scans, if any. */
  lateCheck?: LateCheck | null;
}

export async function executeRun(x: RunExecution): Promise<Bound> {
  const { config, table, store, pool, run, done, acks, resumed, report, out: o, stop, ledger, lateCheck = null } = x;
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

  const attemptShard = (shard: ShardSpec): Promise<ShardOutcome> => attemptShardOnPool(pool, {
    config, table, shard, runId: run.runId, lateCheck: lateCheck?.readsFor(shard.index),
    acks: resumableAcks(acks.get(shard.index), shard, run.snapshot, ledger.horizonStart !== null, (exporterId) => o.log.warn({ shard: shard.index, exporter: exporterId }, PREFIX_RESENT)),
    orderedForAge: orderedForAge(config, shard, pace.expectedMs(shard.estimatedRows)),
  }, {
    progress: (index, rows) => o.progress.update(index, rows),
    read: (rows, bytes) => o.observer?.read?.(rows, bytes),
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
        if (outcome.restartedOrdered) o.log.info({ shard: shard.index, rows: outcome.rows }, 'an unordered shard read passed source.maxSnapshotAge; the shard was read again in (timestamp, key) order, which can renew its snapshot');
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
  report.snapshotRenewals += outcome.renewals?.length ?? 0;
  if (outcome.restartedOrdered) report.orderedRereads++;
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

