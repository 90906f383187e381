import { Piscina } from 'piscina';
import type { Config } from '../config/types.js';
import { errorMessage } from '../config/errors.js';
import type { Logger } from '../util/log.js';
import { workerFile } from '../util/paths.js';

const MIB = 1024 * 1024;

/**
 * Each worker thread's V8 heap caps. Not for safety but for memory: left to its defaults (an old
 * generation of a quarter of the machine's memory, a 32+ MiB young generation), V8 lets a busy
 * thread's heap fill with hundreds of MiB of garbage before collecting, and it picks its
 * slower-growing policy only when a cap is set. Measured on 200 k rows, one worker: Google Cloud
 * Logging went from 319 to 243 MiB peak RSS with the old-generation cap and to ~211 MiB with the
 * young one too; `_bulk` with two workers from 294 to 253 MiB; files and speed unchanged. The
 * live data of a shard is far smaller: a batch of rows (off-heap Buffers) and the requests in
 * flight; eight times `maxRowBytes` leaves room for the largest accepted document to be parsed.
 */
const YOUNG_GENERATION_MB = 16;

export function workerHeapLimitMb(config: Pick<Config, 'maxRowBytes'>): number {
  // Tests lower it to reach it without gigabytes of rows.
  const forTest = Number(process.env.LOGSHIP_TEST_WORKER_HEAP_MB ?? 0);
  if (forTest > 0) return forTest;
  return Math.max(1024, Math.ceil((8 * config.maxRowBytes) / MIB));
}

/**
 * The piscina pool that runs shards, for a local run and a distributed worker alike. A thread
 * that dies between tasks (out of heap while idle, say) is logged and replaced by piscina: left
 * unheard, the pool's 'error' event would end the process.
 */
export function createShardPool(config: Pick<Config, 'maxRowBytes'>, threads: number, log: Logger): Piscina {
  const pool = new Piscina({
    filename: workerFile(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: workerHeapLimitMb(config), maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  pool.on('error', (err: unknown) => log.warn({ error: errorMessage(err), heapLimitMb: workerHeapLimitMb(config) }, 'a worker thread died between shards; piscina starts another'));
  return pool;
}
