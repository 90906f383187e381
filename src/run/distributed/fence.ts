import { holdsShard } from '../../state/postgres_store.js';
import type pg from 'pg';
import type { Bound } from '../../core/keyset.js';
import type { Db } from '../../source/session.js';
import type { InShardAck } from '../../sinks/delivery/types.js';
import { shardDoneSql } from '../../state/postgres_store.js';
import type { ShardOutcome } from '../../state/types.js';
import type { ShardSpec } from '../../core/keyset.js';

export interface ShardClaim {
  shardIndex: number;
  attempt: number;
  worker: string;
  claimedAt: string;
}

/**
 * Fencing for distributed shards, in the state database next to the state tables. A job can be
 * delivered twice (its worker stalled past the expiry and woke up), so whoever takes a shard first
 * bumps its attempt number, and its "shard done" commits only while that attempt is still the
 * latest: a stale worker's commit changes nothing.
 */
export class ShardFence {
  constructor(
    private readonly db: Db,
    private readonly table: string,
    private readonly offsetKey: string,
  ) {}

  async ensure(): Promise<void> {
    await this.db.run((c) => c.query(`
      CREATE TABLE IF NOT EXISTS ${this.table}_claims (
        offset_key text NOT NULL,
        run_id text NOT NULL,
        shard_index int NOT NULL,
        attempt int NOT NULL,
        worker text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (offset_key, run_id, shard_index))`).catch((err: { code?: string }) => {
      // Two processes racing to create it: the loser sees a unique violation.
      if (err.code !== '23505') throw err;
    }));
  }

  /**
   * What a worker needs before it claims a job's shard, in one round trip: whether `runId` is still
   * this offsetKey's run, the shard's spec from its manifest (not the whole manifest: a long
   * backfill's runs thousands of shards), and whether the shard is already done.
   */
  /** `snapshot`: the run's (RunManifest.snapshot), which resumableAcks needs for an ack stored by an older logship. */
  async jobShard(runId: string, shardIndex: number): Promise<{ current: boolean; shard: ShardSpec | null; done: boolean; snapshot?: string | null }> {
    const r = await this.db.run((c) => c.query<{ current: boolean; shard: ShardSpec | null; done: boolean; snapshot: string | null }>(
      `SELECT coalesce(run->>'runId' = $2, false) AS current, CASE WHEN run->>'runId' = $2 THEN run->>'snapshot' END AS snapshot,
              (SELECT x FROM jsonb_array_elements(CASE WHEN run->>'runId' = $2 THEN run->'shards' ELSE '[]'::jsonb END) x WHERE (x->>'index')::int = $3) AS shard,
              EXISTS (SELECT 1 FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2 AND shard_index = $3) AS done
       FROM ${this.table} WHERE offset_key = $1`, [this.offsetKey, runId, shardIndex]));
    return r.rows[0] ?? { current: false, shard: null, done: false };
  }

  async outcomes(runId: string): Promise<Map<number, ShardOutcome>> {
    const r = await this.db.run((c) => c.query<{ shard_index: number; outcome: ShardOutcome }>(
      `SELECT shard_index, outcome FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2`, [this.offsetKey, runId]));
    return new Map(r.rows.map((x) => [x.shard_index, x.outcome]));
  }

  async isDone(runId: string, shardIndex: number): Promise<boolean> {
    const r = await this.db.run((c) => c.query(
      `SELECT 1 FROM ${this.table}_shards WHERE offset_key = $1 AND run_id = $2 AND shard_index = $3`, [this.offsetKey, runId, shardIndex]));
    return r.rowCount === 1;
  }

  /** Takes the shard: returns this worker's attempt number (one more than the last taker's). */
  async claim(runId: string, shardIndex: number, worker: string): Promise<number> {
    const r = await this.db.run((c) => c.query<{ attempt: number }>(
      `INSERT INTO ${this.table}_claims AS k (offset_key, run_id, shard_index, attempt, worker) VALUES ($1, $2, $3, 1, $4)
       ON CONFLICT (offset_key, run_id, shard_index) DO UPDATE SET attempt = k.attempt + 1, worker = EXCLUDED.worker, claimed_at = now()
       RETURNING attempt`, [this.offsetKey, runId, shardIndex, worker]));
    return r.rows[0]!.attempt;
  }

  async claims(runId: string): Promise<ShardClaim[]> {
    const r = await this.db.run((c) => c.query<{ shard_index: number; attempt: number; worker: string; claimed_at: Date }>(
      `SELECT shard_index, attempt, worker, claimed_at FROM ${this.table}_claims WHERE offset_key = $1 AND run_id = $2 ORDER BY shard_index`,
      [this.offsetKey, runId]));
    return r.rows.map((x) => ({ shardIndex: x.shard_index, attempt: x.attempt, worker: x.worker, claimedAt: x.claimed_at.toISOString() }));
  }

  /** In-shard acks (bounded-duplicates exporters) stored by earlier attempts of this shard. */
  async acks(runId: string, shardIndex: number): Promise<Record<string, InShardAck> | undefined> {
    const r = await this.db.run((c) => c.query<{ exporter_id: string; ack: InShardAck }>(
      `SELECT exporter_id, ack FROM ${this.table}_acks WHERE offset_key = $1 AND run_id = $2 AND shard_index = $3`,
      [this.offsetKey, runId, shardIndex]));
    if (r.rows.length === 0) return undefined;
    return Object.fromEntries(r.rows.map((x) => [x.exporter_id, x.ack]));
  }

  /** Stores an in-shard ack if `attempt` still holds the shard; a stale attempt's ack is refused (thrown). */
  async saveAck(runId: string, shardIndex: number, attempt: number, exporterId: string, ack: InShardAck): Promise<void> {
    const held = await this.fenced(runId, shardIndex, attempt, (c) => c.query(
      `INSERT INTO ${this.table}_acks (offset_key, run_id, shard_index, exporter_id, ack) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (offset_key, run_id, shard_index, exporter_id) DO UPDATE SET ack = EXCLUDED.ack`,
      [this.offsetKey, runId, shardIndex, exporterId, JSON.stringify(ack)]).then(() => undefined));
    if (!held) throw new StaleAttemptError(shardIndex, attempt);
  }

  /** Records the shard done if `attempt` still holds it; false (and nothing written) otherwise. */
  async commitDone(runId: string, shardIndex: number, attempt: number, outcome: ShardOutcome): Promise<boolean> {
    return this.fenced(runId, shardIndex, attempt, async (c) => {
      await c.query(shardDoneSql(this.table), [this.offsetKey, runId, shardIndex, JSON.stringify(outcome)]);
    });
  }

  /** Throws StaleAttemptError unless `attempt` still holds the shard and the shard is not done. */
  async check(runId: string, shardIndex: number, attempt: number): Promise<void> {
    const r = await this.db.run((c) => c.query<{ attempt: number; done: boolean }>(
      `SELECT attempt, EXISTS (SELECT 1 FROM ${this.table}_shards s WHERE s.offset_key = k.offset_key AND s.run_id = k.run_id AND s.shard_index = k.shard_index) AS done
       FROM ${this.table}_claims k WHERE offset_key = $1 AND run_id = $2 AND shard_index = $3`, [this.offsetKey, runId, shardIndex]));
    const row = r.rows[0];
    if (!row || row.attempt !== attempt || row.done) throw new StaleAttemptError(shardIndex, attempt);
  }

  /** Moves the stored offset (the coordinator does, over the contiguous finished prefix). */
  async saveOffset(offset: Bound): Promise<void> {
    await this.db.run((c) => c.query(
      `UPDATE ${this.table} SET offset_ts = $2, offset_row_key = $3, updated_at = now() WHERE offset_key = $1`,
      [this.offsetKey, offset.ts, offset.key]));
  }

  async forgetClaims(runId: string): Promise<void> {
    await this.db.run((c) => c.query(`DELETE FROM ${this.table}_claims WHERE offset_key = $1 AND run_id = $2`, [this.offsetKey, runId]));
  }

  /**
   * Runs `write` in a transaction that holds the shard's claim row locked, if the claim is still
   * `attempt` and the shard is not done yet: a newer claim waits for this commit, or this one sees it.
   */
  private fenced(runId: string, shardIndex: number, attempt: number, write: (c: pg.Client) => Promise<void>): Promise<boolean> {
    return this.db.run(async (c) => {
      await c.query('BEGIN');
      try {
        if (!(await holdsShard(c, this.table, this.offsetKey, runId, shardIndex, attempt))) {
          await c.query('ROLLBACK');
          return false;
        }
        await write(c);
        await c.query('COMMIT');
        return true;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }
}

export class StaleAttemptError extends Error {
  constructor(shardIndex: number, attempt: number) {
    super(`shard ${shardIndex}: attempt ${attempt} was superseded by a newer attempt (this worker's job expired); its work is dropped`);
  }
}
