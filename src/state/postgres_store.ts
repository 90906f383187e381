import type pg from 'pg';
import { RunError } from '../config/errors.js';
import type { Bound } from '../plan/keyset.js';
import type { ReadRange, RunManifest, ShardOutcome, StateStore, StoredState } from './types.js';

/** SQL a worker runs inside its delete transaction, so the delete and the checkpoint commit together. */
export function shardDoneSql(table: string): string {
  return `INSERT INTO ${table}_shards (offset_key, run_id, shard_index, outcome) VALUES ($1, $2, $3, $4)
          ON CONFLICT (offset_key, run_id, shard_index) DO UPDATE SET outcome = EXCLUDED.outcome, done_at = now()`;
}

/** State in the source database (table logship_state by default). */
export class PostgresStateStore implements StateStore {
  readonly label: string;

  constructor(
    private readonly client: pg.Client,
    private readonly table: string,
    private readonly offsetKey: string,
  ) {
    this.label = `postgres table ${table}`;
  }

  async open(): Promise<void> {
    await this.client.query(`
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
      ALTER TABLE ${this.table} ADD COLUMN IF NOT EXISTS reads jsonb;`).catch((err) => {
      // Two first runs racing to create the tables: the loser sees a unique violation.
      if ((err as { code?: string }).code !== '23505') throw err;
    });
    const lock = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`logship:${this.offsetKey}`]);
    if (!lock.rows[0]!.ok) throw new RunError(`offsetKey '${this.offsetKey}': another logship run holds its lock; wait for it to finish`);
  }

  async load(): Promise<StoredState> {
    try {
      return await this.loadExisting();
    } catch (err) {
      // No state table yet (a `plan` before the first run): nothing stored.
      if ((err as { code?: string }).code === '42P01') return { offset: null, run: null, done: new Map(), reads: [], updatedAt: null };
      throw err;
    }
  }

  private async loadExisting(): Promise<StoredState> {
    const r = await this.client.query<{ offset_ts: string | null; offset_row_key: string | null; run: RunManifest | null; reads: ReadRange[] | null; updated_at: Date }>(
      `SELECT offset_ts, offset_row_key, run, reads, updated_at FROM ${this.table} WHERE offset_key = $1`,
      [this.offsetKey],
    );
    const row = r.rows[0];
    const done = new Map<number, ShardOutcome>();
    if (row?.run) {
      const s = await this.client.query<{ shard_index: number; outcome: ShardOutcome }>(
        `SELECT shard_index, outcome FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2`,
        [this.offsetKey, row.run.runId],
      );
      for (const x of s.rows) done.set(x.shard_index, x.outcome);
    }
    return {
      offset: row?.offset_ts ? { ts: row.offset_ts, key: row.offset_row_key } : null,
      run: row?.run ?? null,
      done,
      reads: row?.reads ?? [],
      updatedAt: row ? row.updated_at.toISOString() : null,
    };
  }

  async beginRun(run: RunManifest): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.table} (offset_key, run) VALUES ($1, $2)
       ON CONFLICT (offset_key) DO UPDATE SET run = EXCLUDED.run, updated_at = now()`,
      [this.offsetKey, JSON.stringify(run)],
    );
  }

  async shardDone(runId: string, index: number, outcome: ShardOutcome, offset: Bound): Promise<void> {
    await this.transaction(async () => {
      await this.client.query(shardDoneSql(this.table), [this.offsetKey, runId, index, JSON.stringify(outcome)]);
      await this.setOffset(offset, false);
    });
  }

  async endRun(runId: string, offset: Bound, reads: ReadRange[]): Promise<void> {
    await this.transaction(async () => {
      await this.setOffset(offset, true);
      await this.client.query(`UPDATE ${this.table} SET reads = $2 WHERE offset_key = $1`, [this.offsetKey, JSON.stringify(reads)]);
      await this.client.query(`DELETE FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2`, [this.offsetKey, runId]);
    });
  }

  async reset(): Promise<void> {
    await this.transaction(async () => {
      await this.client.query(`DELETE FROM ${this.table} WHERE offset_key = $1`, [this.offsetKey]);
      await this.client.query(`DELETE FROM ${this.table}_shards WHERE offset_key = $1`, [this.offsetKey]);
    });
  }

  async close(): Promise<void> {
    await this.client.query('SELECT pg_advisory_unlock(hashtext($1))', [`logship:${this.offsetKey}`]).catch(() => {});
  }

  private async setOffset(offset: Bound, clearRun: boolean): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.table} (offset_key, offset_ts, offset_row_key) VALUES ($1, $2, $3)
       ON CONFLICT (offset_key) DO UPDATE SET offset_ts = EXCLUDED.offset_ts, offset_row_key = EXCLUDED.offset_row_key,
         run = CASE WHEN $4 THEN NULL ELSE ${this.table}.run END, updated_at = now()`,
      [this.offsetKey, offset.ts, offset.key, clearRun],
    );
  }

  private async transaction(fn: () => Promise<void>): Promise<void> {
    await this.client.query('BEGIN');
    try {
      await fn();
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
}
