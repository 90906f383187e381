import type PgBoss from 'pg-boss';
import type { RunManifest } from '../../state/types.js';
import { shardJobId } from '../../state/distributed_names.js';

export interface ShardJobState {
  shardIndex: number;
  state: 'created' | 'retry' | 'active' | 'completed' | 'cancelled' | 'failed';
  retryCount: number;
  error: string | null;
}

/**
 * The queue state of a run's shard jobs, read in one query from pg-boss's job table (pinned ~10.4,
 * whose schema this relies on) rather than one getJobById per shard per poll.
 */
export async function shardJobStates(db: PgBoss.Db, schema: string, queue: string, run: RunManifest, offsetKey: string): Promise<ShardJobState[]> {
  const ids = run.shards.map((s) => shardJobId(offsetKey, run.runId, s.index));
  const byId = new Map(ids.map((id, i) => [id, run.shards[i]!.index]));
  const r = await db.executeSql(
    `SELECT id::text, state::text, retry_count, output FROM ${schema}.job WHERE name = $1 AND id = ANY($2::uuid[])`, [queue, ids]);
  const rows = r.rows as { id: string; state: ShardJobState['state']; retry_count: number; output: { message?: string } | null }[];
  return rows.map((x) => ({ shardIndex: byId.get(x.id)!, state: x.state, retryCount: x.retry_count, error: x.output?.message ?? null }))
    .sort((a, b) => a.shardIndex - b.shardIndex);
}
