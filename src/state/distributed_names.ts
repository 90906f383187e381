import { createHash } from 'node:crypto';

/** One queue per offsetKey: workers started with a config drain exactly that config's runs. */
export function queueName(offsetKey: string): string {
  // pg-boss accepts letters, digits, '.', '-', '_' and '/'; the hash keeps distinct keys distinct.
  const readable = offsetKey.replace(/[^\w.-]/g, '_').slice(0, 40);
  const hash = createHash('sha256').update(offsetKey).digest('hex').slice(0, 8);
  return `logship.${readable}.${hash}`;
}

/** Where a job that exhausted its retries lands. */
export function deadLetterQueueName(offsetKey: string): string {
  return `${queueName(offsetKey)}.dead`;
}

/**
 * The job id of one shard of one run, the same on every enqueue: a coordinator killed mid-enqueue
 * and rerun inserts nothing twice (pg-boss ignores an id it already holds). pg-boss wants a UUID.
 */
export function shardJobId(offsetKey: string, runId: string, shardIndex: number): string {
  const h = createHash('sha256').update(`${offsetKey}\n${runId}\n${shardIndex}`).digest('hex');
  // Shaped as a version-8 (custom) UUID with the RFC 4122 variant.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface ShardJobData {
  runId: string;
  shardIndex: number;
}

/**
 * NOTIFY channels (identifiers: at most 63 bytes, so hashed). Notifications only wake a waiter
 * early; each waiter still polls, so a lost one delays and never hangs.
 *  - jobs: the coordinator sends it after enqueueing; idle workers fetch at once;
 *  - shard done: a worker's fenced done commit sends it (in the same transaction, so only a
 *    committed shard wakes the coordinator).
 */
export function jobsChannel(queue: string): string {
  return `logship_jobs_${createHash('sha256').update(queue).digest('hex').slice(0, 16)}`;
}

export function shardDoneChannel(stateTable: string, offsetKey: string): string {
  return `logship_done_${createHash('sha256').update(`${stateTable}\n${offsetKey}`).digest('hex').slice(0, 16)}`;
}
