import type PgBoss from 'pg-boss';
import { ConfigError, errorMessage } from '../../core/errors.js';
import { redact } from '../../core/secrets.js';
import type { Config } from '../../shard/config.js';
import type { QueueConfig } from '../../state/options.js';
import { defaultShardTimeoutMs } from './shard_timeout.js';
import { sourceTarget } from '../../source/connection.js';
import { openClient, pgTarget, settled, type PgTarget, type Ssl } from '../../source/tls.js';
import type { Logger } from '../../core/log.js';
import { deadLetterQueueName, queueName } from '../../state/distributed_names.js';

/**
 * Distributed mode keeps the fencing rows next to the state: postgres state only. (`delete: true`
 * works: a worker deletes its shard and commits it done in one transaction fenced on its attempt.)
 */
export function checkDistributedConfig(config: Config): QueueConfig {
  if (config.state.type !== 'postgres') {
    throw new ConfigError('state.type', `distributed mode needs state.type postgres (workers fence their shards in the state tables; got ${config.state.type})`);
  }
  return config.queue ?? { url: undefined, schema: 'logship_queue', shardTimeoutMs: defaultShardTimeoutMs(config.rowsPerShard), pollIntervalMs: 2000 };
}

export interface Queue {
  boss: PgBoss;
  name: string;
  settings: QueueConfig;
  /** The queue database (for the LISTEN connection of a worker). */
  target: PgTarget;
}

/**
 * Starts pg-boss on the queue database (creating its schema on first use) and the run's queue with
 * its dead-letter queue. Expired jobs are found by pg-boss's maintenance, run here every quarter
 * of the shard timeout, so a dead worker's shard is retried at most 1.25 timeouts after it took it.
 */
export async function openQueue(config: Config, log: Logger, connections: number): Promise<Queue> {
  const settings = checkDistributedConfig(config);
  const target = queueTarget(config);
  const timeoutSeconds = Math.ceil(settings.shardTimeoutMs / 1000);
  // Loaded here, not with this module: its ~140 ms of module loading then overlaps the
  // coordinator's planning queries instead of preceding the whole run.
  const { default: PgBossClass } = await import('pg-boss');
  const name = queueName(config.offsetKey);
  const dead = deadLetterQueueName(config.offsetKey);
  // shardAttempts counts tries: a worker that died or outlived the timeout used one.
  const options = { retryLimit: config.shardAttempts - 1, expireInSeconds: timeoutSeconds, retryDelay: 1, retryBackoff: true };
  let boss: PgBoss | undefined;
  await underSetupLock(target, settings.schema, async (ssl) => {
    // pg-boss's pool opens its connections itself: it gets the TLS settings the lock's connection
    // settled on (sslmode=prefer's fallback happens there, once).
    boss = new PgBossClass({
      ...(settled(target, ssl) as PgBoss.DatabaseOptions),
      schema: settings.schema,
      max: connections,
      application_name: 'logship-queue',
      maintenanceIntervalSeconds: Math.max(1, Math.min(120, Math.floor(timeoutSeconds / 4))),
      schedule: false,
    });
    boss.on('error', (err: unknown) => log.warn({ error: redact(errorMessage(err)) }, 'queue maintenance failed; it is retried'));
    await boss.start();
    await boss.createQueue(dead);
    await boss.createQueue(name, { name, ...options, deadLetter: dead });
    // A queue made by an earlier run keeps its first settings: bring them up to this config's.
    await boss.updateQueue(name, { name, ...options, deadLetter: dead });
  });
  return { boss: boss!, name, settings, target };
}

/** The queue database: queue.url, or the source's (with source.password). TLS as in tls.ts. */
export function queueTarget(config: Config): PgTarget {
  const url = config.queue?.url;
  return url ? pgTarget({ url, option: 'queue.url' }) : sourceTarget(config.source);
}

/**
 * pg-boss's schema creation and createQueue are not safe from several processes at once: three
 * `logship worker`s started together (as a Kubernetes Indexed Job starts them) failed with
 * 40P01 deadlock_detected creating the queue's partition. Set-up therefore runs under one
 * session advisory lock on the queue database, released when that session ends.
 */
async function underSetupLock(target: PgTarget, schema: string, setUp: (ssl: Ssl) => Promise<void>): Promise<void> {
  const { client: lock, ssl } = await openClient(target, { application_name: 'logship-queue-setup' });
  try {
    await lock.query('SELECT pg_advisory_lock(hashtext($1))', [`logship-queue-setup:${schema}`]);
    await setUp(ssl);
  } finally {
    await lock.end().catch(() => {});
  }
}
