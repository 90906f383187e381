import { filtersOf } from './config.js';
import type { MessagePort } from 'node:worker_threads';
import type pg from 'pg';
import type { Config } from './config.js';
import { DeadLetterFile, FailOnBadRow } from '../source/bad_rows.js';
import { connectSource, explainSourceTimeout, passRawBytesFromSqlAscii } from '../source/connection.js';
import { readWithCopy } from '../source/copy_reader.js';
import { readWithCursor } from '../source/cursor_reader.js';
import { findNonUtf8Row, INVALID_ENCODING } from '../source/diagnose.js';
import { afterRow, keyIn, shardDelete, shardSelect } from '../source/query.js';
import { committedAfter, parseSnapshot } from '../source/snapshots.js';
import type { SourceTable } from '../source/table.js';
import type { Bound } from '../core/keyset.js';
import type { ShardSpec } from '../core/keyset.js';
import { acksInShard, createExporter, partitionsByEventTime } from '../sinks/registry.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { WorkerSide } from './channel.js';
import type { Exporter, ShardWriter } from '../sinks/types.js';
import { shardDoneSql } from '../state/postgres_store.js';
import { holdsShard } from '../state/postgres_store.js';
import { shardDoneChannel } from '../state/distributed_names.js';
import type { ReadRange, ShardOutcome } from '../state/types.js';
import { checkBasis, LateKeys, lateCheckSql, scannedPast } from './late_check.js';
import { ShardStoppedError } from '../core/errors.js';
import { ReadTransaction, RejectOnce, rowBound, snapshotAgeLimitMs, UnorderedReadTooOld, type RowPosition, type SnapshotClock } from './snapshot_age.js';

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
}

const PROGRESS_EVERY_MS = 250;

// One connection and one set of exporters per worker thread, reused across its shards (the
// connection is the source's: an in-process caller may export from another source next).
let client: { key: string; db: pg.Client } | null = null;
let exporters: { key: string; list: Promise<Exporter[]> } | null = null;

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

function exportersFor(config: Config): Promise<Exporter[]> {
  const key = JSON.stringify(config.logExporters);
  if (!exporters || exporters.key !== key) exporters = { key, list: Promise.all(config.logExporters.map(createExporter)) };
  return exporters.list;
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
 * The late-row check a window shard carries, set up in its read transaction (whose snapshot is
 * the check's `until`): the SQL folded into its query, or none when no range can be compared.
 */
async function foldedLateCheck(db: pg.Client, snapshot: string, table: SourceTable, config: Config, reads: ReadRange[]) {
  const { now, stable, candidates } = await checkBasis(db, snapshot, reads);
  const keys = new LateKeys();
  const checked = candidates.map((r) => r.id);
  if (candidates.length === 0) return { sql: undefined, keys, sorted: [], checked };
  const { sorted, conditions, tree } = lateCheckSql(table, config, candidates, now, stable);
  return { sql: { conditions, tree }, keys, sorted, checked };
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
 * Exports one shard: read it once, fan every batch out to all exporters, and count it done only
 * when every exporter confirmed. The read is a REPEATABLE READ transaction whose snapshot is
 * returned, so a later run can find the rows committed after it (late rows); a late catch-up
 * shard reads only those. A read that passes source.maxSnapshotAge goes on in a new snapshot
 * (see snapshot_age.ts). With `delete`, the rows are deleted in the read's one snapshot (so rows
 * inserted meanwhile survive) and the shard's checkpoint commits in that same transaction.
 */
export async function exportShard(input: ShardTaskInput): Promise<ShardOutcome> {
  const channel = new WorkerSide(input.progress);
  try {
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
  const ackers = config.logExporters.map(acksInShard);
  const fence = input.attempt === undefined ? undefined : { attempt: input.attempt, check: () => channel.checkFence() };
  const writers: ShardWriter[] = (await exportersFor(config)).map((e, i) =>
    e.openShard(shard, table, {
      resume: ackers[i] ? input.acks?.[e.id] : undefined,
      acknowledge: ackers[i] ? (ack) => channel.acknowledge(e.id, ack) : undefined,
      observe: (event) => channel.delivery(e.id, event),
      fence,
    }));
  const deadLetters = config.badRows === 'deadLetter' ? new DeadLetterFile(config.maxRowBytes, config.deadLetter, shard.id, fence) : null;
  const badRows = new RejectOnce(deadLetters ?? new FailOnBadRow(config.maxRowBytes));
  const delayMs = Number(process.env.LOGSHIP_TEST_BATCH_DELAY_MS ?? 0);
  // Tests hold this many MiB of JS heap per batch, to meet the worker's heap cap.
  const holdMb = Number(process.env.LOGSHIP_TEST_HOLD_MB_PER_BATCH ?? 0);
  const held: number[][] = [];
  const reportEveryMs = process.env.LOGSHIP_TEST_PROGRESS_EVERY_BATCH === '1' ? 0 : PROGRESS_EVERY_MS;
  const ageLimitMs = snapshotAgeLimitMs(config, shard);
  const read = new ReadTransaction(db, !config.delete, input.clock ?? Date.now);
  read.heldMs = abandoned?.heldMs ?? 0;
  /** Distributed mode's done commit, in a transaction of its own when the read's is over. */
  let doneTransaction = false;
  const endTransaction = async (command: 'COMMIT' | 'ROLLBACK'): Promise<void> => {
    if (read.open) await read.end(command);
    else if (doneTransaction) {
      await db.query(command);
      doneTransaction = false;
    }
  };
  let rows = 0;
  let bytes = 0;
  let lastReport = Date.now();
  try {
    const snapshot = await read.begin();
    const extra = !shard.late ? [] : shard.late.keys ? [keyIn(table, shard.late.keys)] : [committedAfter(parseSnapshot(shard.late.since), parseSnapshot(snapshot))];
    const wire = config.source.stream === 'copy' ? wireColumns(config, table) : [];
    const withoutDocument = documentFreeFields(config, table) ?? undefined;
    // The carried check is the first snapshot's; see the renewal below.
    let late = input.lateCheck && config.source.stream === 'copy' && !shard.late ? await foldedLateCheck(db, snapshot, table, config, input.lateCheck) : null;
    const renewals: { lo: Bound; snapshot: string }[] = [];
    /** A renewed read goes on strictly after this row, the last one delivered. */
    let after: RowPosition | null = null;
    /** A renewed read has returned no row yet (if it never does, the range before runs to hi). */
    let startsRange = false;
    for (;;) {
      const sql = after
        ? shardSelect(table, filters, { ts: after.ts, key: null }, shard.hi, ordered, config.source.stream, [...extra, afterRow(table, after)], wire, withoutDocument !== undefined)
        : shardSelect(table, filters, shard.lo, shard.hi, ordered, config.source.stream, extra, wire, withoutDocument !== undefined, late?.sql);
      const lateRows = !after && late?.sql ? late.keys : undefined;
      const batches = config.source.stream === 'copy'
        ? readWithCopy(db, sql, config.source.fetchSize, { badRows, jsonbBody: table.bodyIsJsonb, wireColumns: wire.length, withoutDocument, lateRows })
        : readWithCursor(db, sql, config.source.fetchSize, { badRows });
      let renewAfter: RowPosition | null = null;
      for await (const batch of batches) {
        // The first row a renewed read returns starts the range its snapshot covers.
        if (startsRange && batch.count > 0) {
          renewals.push({ lo: rowBound(batch, 0), snapshot: read.snapshot });
          startsRange = false;
        }
        if (writers.length === 1) await writers[0]!.write(batch);
        else await Promise.all(writers.map((w) => w.write(batch)));
        rows += batch.count;
        bytes += batch.bytes;
        if (batch.count > 0) badRows.delivered(batch, batch.count - 1);
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        for (let m = 0; m < holdMb; m++) held.push(new Array<number>(1 << 17).fill(rows + m));
        // The main thread asks a shard to stop at a deadline or a signal; checked between batches.
        if (channel.stopRequested) throw new ShardStoppedError(`stopped after ${rows} rows; left for the next run`);
        const now = Date.now();
        if (now - lastReport >= reportEveryMs) {
          channel.progress(shard.index, rows, bytes);
          lastReport = now;
        }
        // At least one batch per snapshot, so a read whose first rows come late still moves on.
        if (ageLimitMs > 0 && batch.count > 0 && (await read.age()) >= ageLimitMs) {
          if (!ordered) throw new UnorderedReadTooOld(`an unordered read of shard ${shard.id} passed source.maxSnapshotAge; it is read again, ordered`);
          renewAfter = rowBound(batch, batch.count - 1);
          break; // stops the statement (a COPY is cancelled), so that its transaction can end
        }
      }
      if (!renewAfter) break;
      await read.renew();
      badRows.renewed();
      // The carried check holds for the first snapshot once the ordered scan has passed every
      // checked range (they lie before the window, so before the first batch is out: it is then
      // complete); if not, it is dropped, and the run checks those ranges on its own.
      if (late && !scannedPast(renewAfter, late.sorted)) late = null;
      after = renewAfter;
      startsRange = true;
    }
    if (!config.delete) {
      // Nothing more to read: do not hold the snapshot open while the exporters finish.
      await read.end('COMMIT');
    }
    const results = await Promise.all(writers.map((w) => w.finish()));
    // Durable before the checkpoint, like the exporters' parts.
    await deadLetters?.commit();
    // A keyed catch-up exported exactly the rows its check saw in snapshot `until`.
    const outcome: ShardOutcome = { rows, deletedRows: null, exporters: results, snapshot: shard.late?.until ?? snapshot, badRows: deadLetters?.count ?? 0 };
    if (renewals.length > 0) outcome.renewals = renewals;
    if (abandoned) outcome.restartedOrdered = true;
    if (late) outcome.lateCheck = { until: snapshot, hits: late.keys.hits(late.sorted), checked: late.checked };
    if (input.attempt !== undefined && config.state.type === 'postgres') {
      // Distributed: the done commit (and the delete, in the read's snapshot) happens only while
      // this attempt still holds the shard, and the claim row stays locked until the commit.
      if (!read.open) {
        await db.query('BEGIN');
        doneTransaction = true;
      }
      // Stored with the outcome, for the coordinator's report (with delete, up to this commit).
      outcome.snapshotHeldMs = read.open ? await read.age() : read.heldMs;
      if (!(await holdsShard(db, config.state.table, config.offsetKey, input.runId, shard.index, input.attempt))) {
        await endTransaction('ROLLBACK');
        // Superseded: take back this attempt's parts and dead letters (attempt-scoped names: never the winner's).
        await Promise.all(writers.map((w) => w.abort()));
        await deadLetters?.abort();
        return { ...outcome, superseded: true };
      }
      if (config.delete) outcome.deletedRows = (await db.query(shardDelete(table, filters, shard.lo, shard.hi, extra))).rowCount ?? 0;
      await db.query(shardDoneSql(config.state.table), [config.offsetKey, input.runId, shard.index, JSON.stringify(outcome)]);
      // Delivered at the commit only: wakes the coordinator, which otherwise sees it at its next poll.
      await db.query('SELECT pg_notify($1, $2)', [shardDoneChannel(config.state.table, config.offsetKey), String(shard.index)]);
    } else if (config.delete && config.state.type === 'postgres') {
      const deleted = await db.query(shardDelete(table, filters, shard.lo, shard.hi, extra));
      outcome.deletedRows = deleted.rowCount ?? 0;
      await db.query(shardDoneSql(config.state.table), [config.offsetKey, input.runId, shard.index, JSON.stringify(outcome)]);
    }
    await endTransaction('COMMIT');
    outcome.snapshotHeldMs = read.heldMs;
    channel.progress(shard.index, rows, bytes);
    return outcome;
  } catch (err) {
    await Promise.all(writers.map((w) => w.abort(err).catch(() => {})));
    await deadLetters?.abort().catch(() => {});
    const ended = await endTransaction('ROLLBACK').then(() => true, () => false);
    if (err instanceof UnorderedReadTooOld) err.heldMs = read.heldMs;
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
