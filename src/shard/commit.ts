import type pg from 'pg';
import type { ShardSpec } from '../core/keyset.js';
import type { DeadLetterFile } from '../source/bad_rows.js';
import { shardDelete, type Filters } from '../source/query.js';
import type { SourceTable } from '../source/table.js';
import { shardDoneChannel } from '../state/distributed_names.js';
import { holdsShard, shardDoneSql } from '../state/postgres_store.js';
import type { ShardOutcome } from '../state/types.js';
import type { Config } from './config.js';
import type { FanOut } from './fan_out.js';
import type { ReadTransaction } from './snapshot_age.js';

export interface CommitSpec {
  db: pg.Client;
  config: Config;
  table: SourceTable;
  shard: ShardSpec;
  filters: Filters;
  runId: string;
  /** Distributed mode: this attempt's number; the done commit is fenced on it. */
  attempt?: number;
  transaction: ReadTransaction;
}

/**
 * The end of a shard: its outcome counted done where the source's transaction must do it
 * (PostgreSQL state with `delete`, or distributed mode), in the read's snapshot, then every
 * transaction ended. Other states record the outcome on the main thread.
 */
export class ShardCommit {
  /** Distributed mode's done commit, in a transaction of its own when the read's is over. */
  private doneTransaction = false;

  constructor(private readonly c: CommitSpec) {}

  /** Counts the shard done; the outcome says `superseded` when another attempt owns the shard by now. */
  /** `extra`: the conditions beyond its range a delete takes rows with: those the shard was read with, or stricter (never a row not read). */
  async commit(outcome: ShardOutcome, extra: string[], fanOut: FanOut, deadLetters: DeadLetterFile | null): Promise<ShardOutcome> {
    const { db, config, table, shard, filters, transaction } = this.c;
    if (this.c.attempt !== undefined && config.state.type === 'postgres') {
      // Distributed: the done commit (and the delete, in the read's snapshot) happens only while
      // this attempt still holds the shard, and the claim row stays locked until the commit.
      if (!transaction.open) {
        await db.query('BEGIN');
        this.doneTransaction = true;
      }
      // Stored with the outcome, for the coordinator's report (with delete, up to this commit).
      outcome.snapshotHeldMs = transaction.open ? await transaction.age() : transaction.heldMs;
      if (!(await holdsShard(db, config.state.table, config.offsetKey, this.c.runId, shard.index, this.c.attempt))) {
        await this.end('ROLLBACK');
        // Superseded: take back this attempt's parts and dead letters (attempt-scoped names: never the winner's).
        await fanOut.takeBack();
        await deadLetters?.abort();
        return { ...outcome, superseded: true };
      }
      if (config.delete) outcome.deletedRows = (await db.query(shardDelete(table, filters, shard.lo, shard.hi, extra))).rowCount ?? 0;
      await db.query(shardDoneSql(config.state.table), [config.offsetKey, this.c.runId, shard.index, JSON.stringify(outcome)]);
      // Delivered at the commit only: wakes the coordinator, which otherwise sees it at its next poll.
      await db.query('SELECT pg_notify($1, $2)', [shardDoneChannel(config.state.table, config.offsetKey), String(shard.index)]);
    } else if (config.delete && config.state.type === 'postgres') {
      const deleted = await db.query(shardDelete(table, filters, shard.lo, shard.hi, extra));
      outcome.deletedRows = deleted.rowCount ?? 0;
      await db.query(shardDoneSql(config.state.table), [config.offsetKey, this.c.runId, shard.index, JSON.stringify(outcome)]);
    }
    await this.end('COMMIT');
    outcome.snapshotHeldMs = transaction.heldMs;
    return outcome;
  }

  /** Ends whichever transaction is open: the read's, or the done commit's. */
  async end(command: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    if (this.c.transaction.open) await this.c.transaction.end(command);
    else if (this.doneTransaction) {
      await this.c.db.query(command);
      this.doneTransaction = false;
    }
  }
}
