import type pg from 'pg';
import type { Bound } from '../core/keyset.js';
import type { Db } from '../source/session.js';
import type { InShardAck } from '../sinks/delivery/types.js';

import type { RunManifest, ShardOutcome } from './types.js';

import { ConfigError, RunError } from '../core/errors.js';

import type { ReadRange, ShardAcks, StateStore, StoredState } from './types.js';

/** SQL a worker runs inside its delete transaction, so the delete and the checkpoint commit together. */
export function shardDoneSql(table: string): string {
  return `INSERT INTO ${table}_shards (offset_key, run_id, shard_index, outcome) VALUES ($1, $2, $3, $4)
          ON CONFLICT (offset_key, run_id, shard_index) DO UPDATE SET outcome = EXCLUDED.outcome, done_at = now()`;
}

/**
 * State in the source database (table logship_state by default). Every write is idempotent and
 * runs through `db`, which redoes it on a new connection when the source restarts mid-run.
 */
export class PostgresStateStore implements StateStore {
  readonly label: string;

  constructor(
    private readonly db: Db,
    private readonly table: string,
    private readonly offsetKey: string,
  ) {
    this.label = `postgres table ${table}`;
  }

  async open(): Promise<void> {
    await this.db.run((c) => this.createTables(c));
    await this.db.run((c) => this.lock(c));
    // The advisory lock is held by the session: a new session after a restart must take it
    // again, and fail if another run took it meanwhile.
    this.db.onReconnect((c) => this.lock(c));
  }

  private async createTables(client: pg.Client): Promise<void> {
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${this.table} (
        offset_key text PRIMARY KEY,
        offset_ts text,
        offset_row_key text,
        run jsonb,
        updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE IF NOT EXISTS ${this.table}_shards (
        offset_key text NOT NULL,
        run_id text NOT NULL,
        shard_index int NOT NULL,
        outcome jsonb NOT NULL,
        done_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (offset_key, run_id, shard_index));
      CREATE TABLE IF NOT EXISTS ${this.table}_acks (
        offset_key text NOT NULL,
        run_id text NOT NULL,
        shard_index int NOT NULL,
        exporter_id text NOT NULL,
        ack jsonb NOT NULL,
        PRIMARY KEY (offset_key, run_id, shard_index, exporter_id));
      ALTER TABLE ${this.table} ADD COLUMN IF NOT EXISTS reads jsonb;`).catch((err) => {
      // Two first runs racing to create the tables: the loser sees a unique violation.
      if ((err as { code?: string }).code === '23505') return;
      if ((err as { code?: string }).code === '42501') {
        throw new ConfigError('state.table', `cannot create ${this.table} in the source database: ${(err as Error).message} (grant CREATE on its schema, create the tables once as their owner, or use state.type: file)`);
      }
      throw err;
    });
  }

  private async lock(client: pg.Client): Promise<void> {
    const lock = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`logship:${this.offsetKey}`]);
    if (!lock.rows[0]!.ok) throw new RunError(`offsetKey '${this.offsetKey}': another logship run holds its lock; wait for it to finish`);
  }

  async load(): Promise<StoredState> {
    try {
      return await this.db.run((c) => this.loadExisting(c));
    } catch (err) {
      // No state table yet (a `plan` before the first run): nothing stored.
      if ((err as { code?: string }).code === '42P01') return { offset: null, run: null, done: new Map(), acks: new Map(), reads: [], updatedAt: null };
      throw err;
    }
  }

  private async loadExisting(client: pg.Client): Promise<StoredState> {
    const r = await client.query<{ offset_ts: string | null; offset_row_key: string | null; run: RunManifest | null; reads: ReadRange[] | null; updated_at: Date }>(
      `SELECT offset_ts, offset_row_key, run, reads, updated_at FROM ${this.table} WHERE offset_key = $1`,
      [this.offsetKey],
    );
    const row = r.rows[0];
    const done = new Map<number, ShardOutcome>();
    const acks: ShardAcks = new Map();
    if (row?.run) {
      const s = await client.query<{ shard_index: number; outcome: ShardOutcome }>(
        `SELECT shard_index, outcome FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2`,
        [this.offsetKey, row.run.runId],
      );
      for (const x of s.rows) done.set(x.shard_index, x.outcome);
      const a = await client.query<{ shard_index: number; exporter_id: string; ack: InShardAck }>(
        `SELECT shard_index, exporter_id, ack FROM ${this.table}_acks WHERE offset_key = $1 AND run_id = $2`,
        [this.offsetKey, row.run.runId],
      ).catch((err: { code?: string }) => {
        // State tables made by a logship without in-shard acknowledgements: none stored.
        if (err.code === '42P01') return { rows: [] };
        throw err;
      });
      for (const x of a.rows) acks.set(x.shard_index, { ...acks.get(x.shard_index), [x.exporter_id]: x.ack });
    }
    return {
      offset: row?.offset_ts ? { ts: row.offset_ts, key: row.offset_row_key } : null,
      run: row?.run ?? null,
      done,
      acks,
      reads: row?.reads ?? [],
      updatedAt: row ? row.updated_at.toISOString() : null,
    };
  }

  async beginRun(run: RunManifest): Promise<void> {
    await this.db.run((c) => c.query(
      `INSERT INTO ${this.table} (offset_key, run) VALUES ($1, $2)
       ON CONFLICT (offset_key) DO UPDATE SET run = EXCLUDED.run, updated_at = now()`,
      [this.offsetKey, JSON.stringify(run)],
    ));
  }

  async shardDone(runId: string, index: number, outcome: ShardOutcome, offset: Bound): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(shardDoneSql(this.table), [this.offsetKey, runId, index, JSON.stringify(outcome)]);
      await this.setOffset(c, offset, false);
    });
  }

  async saveAck(runId: string, index: number, exporterId: string, ack: InShardAck): Promise<void> {
    await this.db.run((c) => c.query(
      `INSERT INTO ${this.table}_acks (offset_key, run_id, shard_index, exporter_id, ack) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (offset_key, run_id, shard_index, exporter_id) DO UPDATE SET ack = EXCLUDED.ack`,
      [this.offsetKey, runId, index, exporterId, JSON.stringify(ack)],
    ));
  }

  async endRun(runId: string, offset: Bound, reads: ReadRange[]): Promise<void> {
    await this.transaction(async (c) => {
      await this.setOffset(c, offset, true);
      await c.query(`UPDATE ${this.table} SET reads = $2 WHERE offset_key = $1`, [this.offsetKey, JSON.stringify(reads)]);
      await c.query(`DELETE FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2`, [this.offsetKey, runId]);
      await c.query(`DELETE FROM ${this.table}_acks WHERE offset_key = $1 AND run_id = $2`, [this.offsetKey, runId]);
    });
  }

  async reset(): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(`DELETE FROM ${this.table} WHERE offset_key = $1`, [this.offsetKey]);
      await c.query(`DELETE FROM ${this.table}_shards WHERE offset_key = $1`, [this.offsetKey]);
      await c.query(`DELETE FROM ${this.table}_acks WHERE offset_key = $1`, [this.offsetKey]);
    });
  }

  async close(): Promise<void> {
    // Not retried: a lost session has released its advisory lock already.
    await this.db.current().query('SELECT pg_advisory_unlock(hashtext($1))', [`logship:${this.offsetKey}`]).catch(() => {});
  }

  private async setOffset(client: pg.Client, offset: Bound, clearRun: boolean): Promise<void> {
    await client.query(
      `INSERT INTO ${this.table} (offset_key, offset_ts, offset_row_key) VALUES ($1, $2, $3)
       ON CONFLICT (offset_key) DO UPDATE SET offset_ts = EXCLUDED.offset_ts, offset_row_key = EXCLUDED.offset_row_key,
         run = CASE WHEN $4 THEN NULL ELSE ${this.table}.run END, updated_at = now()`,
      [this.offsetKey, offset.ts, offset.key, clearRun],
    );
  }

  private transaction(fn: (client: pg.Client) => Promise<void>): Promise<void> {
    return this.db.run(async (c) => {
      await c.query('BEGIN');
      try {
        await fn(c);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }
}

/**
 * Inside the caller's open transaction: locks the shard's claim row and says whether `attempt`
 * still holds the shard and it is not done. A newer claim then waits for this transaction to end.
 * In a REPEATABLE READ transaction (a worker's delete) a claim changed since its snapshot makes
 * PostgreSQL refuse the lock (40001): that too means a newer attempt, and the transaction is lost.
 */
export async function holdsShard(c: pg.Client, table: string, offsetKey: string, runId: string, shardIndex: number, attempt: number): Promise<boolean> {
  let row: { attempt: number; done: boolean } | undefined;
  try {
    const r = await c.query<{ attempt: number; done: boolean }>(
      `SELECT attempt, EXISTS (SELECT 1 FROM ${table}_shards s WHERE s.offset_key = k.offset_key AND s.run_id = k.run_id AND s.shard_index = k.shard_index) AS done
       FROM ${table}_claims k WHERE offset_key = $1 AND run_id = $2 AND shard_index = $3 FOR UPDATE`,
      [offsetKey, runId, shardIndex]);
    row = r.rows[0];
  } catch (err) {
    if ((err as { code?: string }).code === '40001') return false;
    throw err;
  }
  return row !== undefined && row.attempt === attempt && !row.done;
}
