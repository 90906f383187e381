import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { Config } from '../../shard/config.js';
import { connectSource } from '../../source/connection.js';
import { fixedDb } from '../../source/session.js';
import { createStateStore } from '../../state/create.js';
import type { Bound } from '../../core/keyset.js';
import { checkDistributedConfig, queueTarget } from './boss.js';
import { openClient } from '../../source/tls.js';
import { ShardFence, type ShardClaim } from './fence.js';
import { queueName } from '../../state/distributed_names.js';
import { shardJobStates, type ShardJobState } from './jobs.js';

export type ShardStatus = 'done' | 'running' | 'queued' | 'failed' | 'not queued';

export interface DistributedStatus {
  offsetKey: string;
  queue: string;
  offset: Bound | null;
  run: null | {
    runId: string;
    createdAt: string;
    shards: number;
    counts: Record<ShardStatus, number>;
    rowsDone: number;
    rowsPlanned: number;
    /** From the rows/s since the run was created; null until a shard has finished. */
    etaSeconds: number | null;
    detail: { shard: number; status: ShardStatus; worker: string | null; attempt: number | null; since: string | null; error: string | null; retries: number }[];
  };
}

/** Reads the state tables and the queue; takes no lock, so it runs beside a coordinator and workers. */
export async function distributedStatus(config: Config, now = Date.now()): Promise<DistributedStatus> {
  const settings = checkDistributedConfig(config);
  const stateTable = config.state.type === 'postgres' ? config.state.table : '';
  const client = await connectSource(config.source, 'status');
  let queueClient: pg.Client | null = null;
  try {
    if (settings.url) queueClient = (await openClient(queueTarget(config), { application_name: 'logship-queue-status' })).client;
    const db = fixedDb(client);
    const state = await (await createStateStore(config, db)).load();
    const out: DistributedStatus = { offsetKey: config.offsetKey, queue: `${settings.schema}.${queueName(config.offsetKey)}`, offset: state.offset, run: null };
    const run = state.run;
    if (!run) return out;
    const missing = (err: { code?: string }) => {
      // No claims table or no queue schema yet: nothing enqueued or claimed.
      if (err.code === '42P01' || err.code === '3F000') return [];
      throw err;
    };
    const claims = await new ShardFence(db, stateTable, config.offsetKey).claims(run.runId).catch(missing) as ShardClaim[];
    const queueDb: PgBoss.Db = { executeSql: (text, values) => (queueClient ?? client).query(text, values) };
    const jobs = await shardJobStates(queueDb, settings.schema, queueName(config.offsetKey), run, config.offsetKey).catch(missing) as ShardJobState[];
    const claimOf = new Map(claims.map((c) => [c.shardIndex, c]));
    const jobOf = new Map(jobs.map((j) => [j.shardIndex, j]));
    const counts: Record<ShardStatus, number> = { done: 0, running: 0, queued: 0, failed: 0, 'not queued': 0 };
    const detail = run.shards.map((s) => {
      const job = jobOf.get(s.index);
      const claim = claimOf.get(s.index);
      const status: ShardStatus = state.done.has(s.index) ? 'done'
        : job?.state === 'active' ? 'running'
          : job?.state === 'failed' || job?.state === 'cancelled' ? 'failed'
            : job ? 'queued' : 'not queued';
      counts[status]++;
      return { shard: s.index, status, worker: claim?.worker ?? null, attempt: claim?.attempt ?? null, since: claim?.claimedAt ?? null, error: job?.error ?? null, retries: job?.retryCount ?? 0 };
    });
    const rowsDone = [...state.done.values()].reduce((sum, o) => sum + o.rows, 0);
    const elapsed = (now - Date.parse(run.createdAt)) / 1000;
    const left = Math.max(0, run.totalRows - rowsDone);
    const etaSeconds = rowsDone > 0 && elapsed > 0 ? Math.round(left / (rowsDone / elapsed)) : null;
    out.run = { runId: run.runId, createdAt: run.createdAt, shards: run.shards.length, counts, rowsDone, rowsPlanned: run.totalRows, etaSeconds, detail };
    return out;
  } finally {
    await client.end().catch(() => {});
    await queueClient?.end().catch(() => {});
  }
}
