import type pg from 'pg';
import type { Bound, ShardSpec } from '../core/keyset.js';
import { readWithCopy } from '../source/copy_reader.js';
import { readWithCursor } from '../source/cursor_reader.js';
import { afterRow, shardSelect, type Filters } from '../source/query.js';
import type { RowBatch } from '../source/row_batch.js';
import type { SourceTable } from '../source/table.js';
import type { ReadRange } from '../state/types.js';
import type { Config } from './config.js';
import { checkBasis, LateKeys, lateCheckSql, scannedPast } from './late_check.js';
import { ReadTransaction, RejectOnce, rowBound, UnorderedReadTooOld, type RowPosition } from './snapshot_age.js';

/** The late-row check a window shard's scan carries (see foldLateCheck). */
export interface FoldedLateCheck {
  sql: { conditions: string[]; tree: string } | undefined;
  keys: LateKeys;
  sorted: ReadRange[];
  checked: string[];
}

/**
 * The late-row check a window shard carries, set up in its read transaction (whose snapshot is
 * the check's `until`): the SQL folded into its query, or none when no range can be compared.
 */
export async function foldLateCheck(db: pg.Client, snapshot: string, table: SourceTable, config: Config, reads: ReadRange[]): Promise<FoldedLateCheck> {
  const { now, stable, candidates } = await checkBasis(db, snapshot, reads);
  const keys = new LateKeys();
  const checked = candidates.map((r) => r.id);
  if (candidates.length === 0) return { sql: undefined, keys, sorted: [], checked };
  const { sorted, conditions, tree } = lateCheckSql(table, config, candidates, now, stable);
  return { sql: { conditions, tree }, keys, sorted, checked };
}

export interface ShardReadSpec {
  db: pg.Client;
  config: Config;
  table: SourceTable;
  shard: ShardSpec;
  filters: Filters;
  /** Read in (timestamp, key) order: only such a read can renew its snapshot. */
  ordered: boolean;
  /** Conditions beyond the shard's range (a late catch-up's rows). */
  extra: string[];
  /**
   * Conditions that depend on the snapshot a statement reads in (a renewed one reads in a newer
   * one): the rows of acknowledged prefixes their snapshots did not see, left out (leaveOutSql).
   */
  leaveOut: (snapshot: string) => string[];
  /** A Parquet exporter's columns, read by PostgreSQL straight from the row. */
  wire: string[];
  /** The wire columns' names when the read skips documents (see documentFreeFields). */
  withoutDocument: string[] | undefined;
  badRows: RejectOnce;
  transaction: ReadTransaction;
  /** source.maxSnapshotAge for this shard, ms; 0 = none. */
  ageLimitMs: number;
  late: FoldedLateCheck | null;
}

/**
 * A shard's read: its rows in batches, from one statement, or from several when the snapshot
 * passes the age limit. Between two batches (the consumer asks for the next one only once it
 * delivered the last) a snapshot past the limit is renewed: the statement stops, a new snapshot
 * is taken and the read goes on strictly after the last row delivered (see snapshot_age.ts).
 */
export class ShardRead {
  /** Where each renewed snapshot's range starts: the first row its read returned. */
  readonly renewals: { lo: Bound; snapshot: string }[] = [];
  /** The carried late check, while it still holds for the first snapshot. */
  late: FoldedLateCheck | null;

  constructor(private readonly s: ShardReadSpec) {
    this.late = s.late;
  }

  async *batches(): AsyncGenerator<RowBatch> {
    const { shard, transaction } = this.s;
    /** A renewed read goes on strictly after this row, the last one delivered. */
    let after: RowPosition | null = null;
    /** A renewed read has returned no row yet (if it never does, the range before runs to hi). */
    let startsRange = false;
    for (;;) {
      let renewAfter: RowPosition | null = null;
      for await (const batch of this.statement(after)) {
        // The first row a renewed read returns starts the range its snapshot covers.
        if (startsRange && batch.count > 0) {
          this.renewals.push({ lo: rowBound(batch, 0), snapshot: transaction.snapshot });
          startsRange = false;
        }
        yield batch;
        // Delivered: rejections up to its last row lie behind any renewed read.
        if (batch.count > 0) this.s.badRows.delivered(batch, batch.count - 1);
        // At least one batch per snapshot, so a read whose first rows come late still moves on.
        if (this.s.ageLimitMs > 0 && batch.count > 0 && (await transaction.age()) >= this.s.ageLimitMs) {
          if (!this.s.ordered) throw new UnorderedReadTooOld(`an unordered read of shard ${shard.id} passed source.maxSnapshotAge; it is read again, ordered`);
          renewAfter = rowBound(batch, batch.count - 1);
          break; // stops the statement (a COPY is cancelled), so that its transaction can end
        }
      }
      if (!renewAfter) return;
      await transaction.renew();
      this.s.badRows.renewed();
      // The carried check holds for the first snapshot once the ordered scan has passed every
      // checked range (they lie before the window, so before the first batch is out: it is then
      // complete); if not, it is dropped, and the run checks those ranges on its own.
      if (this.late && !scannedPast(renewAfter, this.late.sorted)) this.late = null;
      after = renewAfter;
      startsRange = true;
    }
  }

  /** The statement from the shard's start, or from just after `after` once renewed. */
  private statement(after: RowPosition | null): AsyncIterable<RowBatch> {
    const { db, config, table, shard, filters, ordered, wire, withoutDocument, badRows, transaction } = this.s;
    const extra = [...this.s.extra, ...this.s.leaveOut(transaction.snapshot)];
    const select = { ordered, mode: config.source.stream, wire, withoutDocument: withoutDocument !== undefined };
    const sql = after
      ? shardSelect(table, filters, { ts: after.ts, key: null }, shard.hi, { ...select, extra: [...extra, afterRow(table, after)] })
      : shardSelect(table, filters, shard.lo, shard.hi, { ...select, extra, late: this.late?.sql });
    const lateRows = !after && this.late?.sql ? this.late.keys : undefined;
    return config.source.stream === 'copy'
      ? readWithCopy(db, sql, config.source.fetchSize, { badRows, jsonbBody: table.bodyIsJsonb, wireColumns: wire.length, withoutDocument, lateRows })
      : readWithCursor(db, sql, config.source.fetchSize, { badRows });
  }
}
