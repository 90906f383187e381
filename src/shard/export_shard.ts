import type { MessagePort } from 'node:worker_threads';
import type pg from 'pg';
import { ShardStoppedError } from '../core/errors.js';
import type { ShardSpec } from '../core/keyset.js';
import { knobs, setTestKnobs, type TestKnobs } from '../core/knobs.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { partitionsByEventTime, acksInShard } from '../sinks/registry.js';
import { DeadLetterFile, FailOnBadRow } from '../source/bad_rows.js';
import { connectSource, explainSourceTimeout, passRawBytesFromSqlAscii } from '../source/connection.js';
import { findNonUtf8Row, INVALID_ENCODING } from '../source/diagnose.js';
import { keyIn } from '../source/query.js';
import { committedAfter, parseSnapshot, type SnapshotPiece } from '../source/snapshots.js';
import type { SourceTable } from '../source/table.js';
import type { ReadRange, ShardOutcome } from '../state/types.js';
import { WorkerSide } from './channel.js';
import { ShardCommit } from './commit.js';
import { filtersOf, type Config } from './config.js';
import { leaveOutSql, rangesToLeaveOut, withLeftOut, type SkippedRange } from './acked_prefix.js';
import { FanOut } from './fan_out.js';
import { foldLateCheck, ShardRead } from './read.js';
import { ReadTransaction, RejectOnce, snapshotAgeLimitMs, UnorderedReadTooOld, type SnapshotClock } from './snapshot_age.js';

export interface ShardTaskInput {
  config: Config;
  table: SourceTable;
  shard: ShardSpec;
  runId: string;
  progress: MessagePort;
  /** Where each bounded-duplicates exporter resumes inside this shard (by exporter id). */
  acks?: Record<string, InShardAck>;
  /** Distributed mode: this attempt's number in `<state.table>_claims`; the done commit is fenced on it. */
  attempt?: number;
  /**
   * Earlier runs' ranges to check for late rows in this shard's own scan (a window shard that
   * scans the whole table anyway): the check then costs a condition per row instead of a scan.
   */
  lateCheck?: ReadRange[];
  /**
   * Read in (timestamp, key) order although nothing else asks for it: the shards done so far
   * say this one's read may come near source.maxSnapshotAge, and only an ordered read can renew
   * its snapshot (see snapshot_age.ts).
   */
  orderedForAge?: boolean;
  /**
   * In-process calls only (a function does not cross to a worker thread): what the snapshot's
   * age is measured with, Date.now by default. Tests replace it to renew at exact points of the
   * read; it may be async, so that a test can act at such a point before the read goes on.
   */
  clock?: SnapshotClock;
  /** The main thread's test knobs (a worker thread's own start at their defaults). */
  knobs?: TestKnobs;
}

const PROGRESS_EVERY_MS = 250;

// One connection per worker thread, reused across its shards (the connection is the source's:
// an in-process caller may export from another source next).
let client: { key: string; db: pg.Client } | null = null;

async function sourceClient(config: Config): Promise<pg.Client> {
  const key = JSON.stringify(config.source);
  if (client && client.key !== key) await closeShardSession();
  if (!client) {
    // Workers connect after the run has started: a refusal now is a restart, not a bad URL.
    const c = await connectSource(config.source, 'worker', { startup: false });
    // The COPY path checks UTF-8 itself; the cursor path gets strings, so the server must.
    if (config.source.stream === 'copy') await passRawBytesFromSqlAscii(c);
    client = { key, db: c };
  }
  return client.db;
}

/** Ends this thread's source session; a worker thread's ends with the thread, an in-process caller ends it here. */
export async function closeShardSession(): Promise<void> {
  const c = client;
  client = null;
  await c?.db.end().catch(() => {});
}

/** A Parquet exporter's columns, read by PostgreSQL straight from the row (see ParquetColumn.sql). */
function wireColumns(config: Config, table: SourceTable): string[] {
  if (!config.logExporters.some((e) => (e as { format?: string }).format === 'PARQUET')) return [];
  return table.parquet.flatMap((c) => (c.sql === undefined ? [] : [c.sql]));
}

/**
 * The wire columns' names when the shard can be read without documents: every exporter writes
 * Parquet and the wire columns carry every value it takes from the document. PostgreSQL then
 * skips jsonb -> text for the whole document, most of its COPY work. Null otherwise.
 */
function documentFreeFields(config: Config, table: SourceTable): string[] | null {
  if (config.source.stream !== 'copy' || config.logExporters.length === 0) return null;
  if (!config.logExporters.every((e) => (e as { format?: string }).format === 'PARQUET')) return null;
  if (table.parquet.some((c) => (c.from === 'field' || c.from === 'document') && c.sql === undefined)) return null;
  return table.parquet.flatMap((c) => (c.sql === undefined ? [] : [c.name]));
}

/**
 * Whether a shard is read in (timestamp, key) order whatever its size: exporters that cannot
 * dedupe resume inside the shard after their acknowledged prefix, which needs that order, and
 * event-time file names need it to group rows into one part per partition, whatever the table's
 * physical order.
 */
function readsInOrder(config: Config): boolean {
  return config.source.ordered || config.logExporters.some(acksInShard) || config.logExporters.some(partitionsByEventTime);
}

/**
 * Exports one shard: read it once (read.ts), fan every batch out to all exporters (fan_out.ts),
 * and count it done only when every exporter confirmed (commit.ts). The read is a REPEATABLE
 * READ transaction whose snapshot is returned, so a later run can find the rows committed after
 * it (late rows); a late catch-up shard reads only those. A read that passes
 * source.maxSnapshotAge goes on in a new snapshot (see snapshot_age.ts). With `delete`, the rows
 * are deleted in the read's one snapshot (so rows inserted meanwhile survive) and the shard's
 * checkpoint commits in that same transaction.
 */
export async function exportShard(input: ShardTaskInput): Promise<ShardOutcome> {
  if (input.knobs) setTestKnobs(input.knobs);
  const channel = new WorkerSide(input.progress);
  try {
    if (input.shard.index >= knobs.stallFromShard) await stallUntilStopped(channel);
    try {
      return await exportOnce(input, channel, readsInOrder(input.config) || input.orderedForAge === true);
    } catch (err) {
      if (!(err instanceof UnorderedReadTooOld)) throw err;
      // Its parts are taken back: read it again, ordered, so that it can renew its snapshot.
      return await exportOnce(input, channel, true, err);
    }
  } finally {
    await channel.flush().catch(() => {});
    channel.close();
  }
}

/** `abandoned`: the unordered read this one replaces (its snapshot's age still counts). */
async function exportOnce(input: ShardTaskInput, channel: WorkerSide, ordered: boolean, abandoned: UnorderedReadTooOld | null = null): Promise<ShardOutcome> {
  const { config, table, shard } = input;
  const filters = filtersOf(config);
  const db = await sourceClient(config);
  const fence = input.attempt === undefined ? undefined : { attempt: input.attempt, check: () => channel.checkFence() };
  // This attempt's snapshots so far (its first, then each renewal), but the ranges it left rows
  // out of in those ranges' own snapshots, for the acks and the outcome (acked_prefix.ts).
  let firstSnapshot = '';
  let read: ShardRead | null = null;
  let skipped: SkippedRange[] = [];
  let leftOut: SkippedRange[] = [];
  const ownPieces = (): SnapshotPiece[] => withLeftOut([{ lo: shard.lo, snapshot: firstSnapshot }, ...(read?.renewals ?? [])], leftOut, shard.hi);
  const fanOut = await FanOut.open(config, table, shard, { acks: input.acks, channel, fence, pieces: ownPieces });
  const deadLetters = config.badRows === 'deadLetter' ? new DeadLetterFile(config.maxRowBytes, config.deadLetter, shard.id, fence) : null;
  const badRows = new RejectOnce(deadLetters ?? new FailOnBadRow(config.maxRowBytes));
  const transaction = new ReadTransaction(db, !config.delete, input.clock ?? Date.now);
  transaction.heldMs = abandoned?.heldMs ?? 0;
  const done = new ShardCommit({ db, config, table, shard, filters, runId: input.runId, attempt: input.attempt, transaction });
  try {
    const snapshot = (firstSnapshot = await transaction.begin());
    // Rows committed into a prefix an exporter skips, after that prefix was read: left out for
    // every exporter, for the catch-up to send once to all. A keyed catch-up's rows are fixed by its check.
    skipped = shard.late?.keys ? [] : fanOut.skippedRanges(shard, snapshot);
    leftOut = await rangesToLeaveOut(db, config, skipped);
    const extra = !shard.late ? [] : shard.late.keys ? [keyIn(table, shard.late.keys)] : [committedAfter(parseSnapshot(shard.late.since), parseSnapshot(snapshot))];
    const wire = config.source.stream === 'copy' ? wireColumns(config, table) : [];
    const withoutDocument = documentFreeFields(config, table) ?? undefined;
    // The carried check is the first snapshot's; the read drops it if a renewal comes too early.
    const late = input.lateCheck && config.source.stream === 'copy' && !shard.late ? await foldLateCheck(db, snapshot, table, config, input.lateCheck) : null;
    const leaveOut = (now: string) => leaveOutSql(table, leftOut, now);
    read = new ShardRead({ db, config, table, shard, filters, ordered, extra, leaveOut, wire, withoutDocument, badRows, transaction, ageLimitMs: snapshotAgeLimitMs(config, shard), late });
    const { rows, bytes } = await deliver(read, fanOut, channel, shard.index);
    if (!config.delete) {
      // Nothing more to read: do not hold the snapshot open while the exporters finish.
      await transaction.end('COMMIT');
    }
    const results = await fanOut.finish();
    // Durable before the checkpoint, like the exporters' parts.
    await deadLetters?.commit();
    // A keyed catch-up exported exactly the rows its check saw in snapshot `until`.
    const outcome: ShardOutcome = { rows, deletedRows: null, exporters: results, snapshot: shard.late?.until ?? snapshot, badRows: deadLetters?.count ?? 0 };
    if (read.renewals.length > 0) outcome.renewals = read.renewals;
    if (abandoned) outcome.restartedOrdered = true;
    if (read.late) outcome.lateCheck = { until: snapshot, hits: read.late.keys.hits(read.late.sorted), checked: read.late.checked };
    // An exporter skipped a prefix an earlier attempt acknowledged: that prefix is recorded with
    // the snapshots it was read in (acked_prefix.ts). A keyed catch-up's rows are fixed by its check.
    const pieces = shard.late?.keys ? null : fanOut.pieces(ownPieces());
    if (pieces) outcome.reads = pieces;
    // The delete (in the read's one snapshot: delete never renews) takes the rows read. Where
    // nothing was left out of the read (late rows off, a range past the horizon), it still keeps
    // the rows the skipping exporter lacks: not exported there, they are not destroyed either.
    const committed = await done.commit(outcome, [...extra, ...leaveOutSql(table, skipped, snapshot)], fanOut, deadLetters);
    if (!committed.superseded) channel.progress(shard.index, rows, bytes);
    return committed;
  } catch (err) {
    await fanOut.abandon(err);
    await deadLetters?.abort().catch(() => {});
    const ended = await done.end('ROLLBACK').then(() => true, () => false);
    if (err instanceof UnorderedReadTooOld) err.heldMs = transaction.heldMs;
    // The read stopped cleanly: the same session reads the shard again, ordered.
    if (err instanceof UnorderedReadTooOld && ended) throw err;
    // A broken connection must not be reused by this thread's next shard.
    await closeShardSession();
    if ((err as { code?: string }).code === INVALID_ENCODING) {
      throw (await findNonUtf8Row(config.source, table, filters, shard.lo, shard.hi).catch(() => null)) ?? err;
    }
    throw explainSourceTimeout(err, config.source);
  }
}

/** Tests only (knobs.stallFromShard): waits for the stop, then leaves the shard for the next run. */
async function stallUntilStopped(channel: WorkerSide): Promise<never> {
  while (!channel.stopRequested) await new Promise((r) => setTimeout(r, 50));
  throw new ShardStoppedError('stopped before reading (a test stalled it)');
}

/** The read's batches to the fan-out, one at a time; progress to the main thread; stops between batches. */
async function deliver(read: ShardRead, fanOut: FanOut, channel: WorkerSide, shardIndex: number): Promise<{ rows: number; bytes: number }> {
  const reportEveryMs = knobs.progressEveryBatch ? 0 : PROGRESS_EVERY_MS;
  // Tests hold this much JS heap per batch, to meet the worker's heap cap.
  const held: number[][] = [];
  let rows = 0;
  let bytes = 0;
  let lastReport = Date.now();
  for await (const batch of read.batches()) {
    await fanOut.write(batch);
    rows += batch.count;
    bytes += batch.bytes;
    if (knobs.batchDelayMs > 0) await new Promise((r) => setTimeout(r, knobs.batchDelayMs));
    for (let m = 0; m < knobs.holdMbPerBatch; m++) held.push(new Array<number>(1 << 17).fill(rows + m));
    // The main thread asks a shard to stop at a deadline or a signal; checked between batches.
    if (channel.stopRequested) throw new ShardStoppedError(`stopped after ${rows} rows; left for the next run`);
    const now = Date.now();
    if (now - lastReport >= reportEveryMs) {
      channel.progress(shardIndex, rows, bytes);
      lastReport = now;
    }
  }
  return { rows, bytes };
}
