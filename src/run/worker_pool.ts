import { knobs } from '../core/knobs.js';
import { Piscina } from 'piscina';
import type { Config } from '../shard/config.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { deliversDocuments } from '../sinks/registry.js';
import { workerFile } from '../core/paths.js';
import { SHARD_WORKER_LOADED } from '../shard/channel.js';

const MIB = 1024 * 1024;

/**
 * Each worker thread's V8 heap caps. Not for safety but for memory: left to its defaults (an old
 * generation of a quarter of the machine's memory), V8 lets a busy thread's heap fill with
 * hundreds of MiB of garbage before collecting, and it picks its slower-growing policy only when a
 * cap is set. The live data of a shard is far smaller: a batch of rows (off-heap Buffers) and the
 * requests in flight; eight times `maxRowBytes` leaves room for the largest accepted document to be
 * parsed. Exporters that deliver documents (Elasticsearch, the platforms) parse and re-serialise
 * every row, so their threads also get a 16 MiB young generation: measured on the quiet machine,
 * `_bulk` with two workers 296–299 → 251 MiB and Google Cloud Logging ~297 → 215–228 MiB peak RSS,
 * at a cost of ~15% of Loki's events/s (32 k → 25–26 k). File and object-store exports allocate
 * little per row and keep V8's default young generation in a single run.
 */
const DOCUMENT_YOUNG_GENERATION_MB = 16;

/**
 * `run --follow` caps every thread's young generation at 12 MiB (two 4 MiB semi-spaces and their
 * large-object space), the size a thread has already reached once its modules are loaded, instead
 * of V8's default 48. Left uncapped, V8 doubles a thread's semi-spaces (4 → 8 → 16 MiB) each time
 * the bytes surviving its scavenges since the last doubling exceed the space, a count that only
 * accumulates; it shrinks them only after a full collection at a low allocation rate, which a
 * thread idle between cycles (piscina parks it in Atomics.wait) never runs. A follow process lives
 * for weeks, so every thread that ran shards ended at the maximum: in the soak (bench:follow,
 * 3,000 cycles at PT0.05S) the busy thread's new space went from 8 to 32 MiB and stayed. The cost
 * falls on a backlog cycle: none measurable for files, ~6% of `_bulk` events/s (16 → 12 MiB); see
 * docs/_pending/follow-memory.md.
 */
export const FOLLOW_YOUNG_GENERATION_MB = 12;

/** The young-generation cap of the pool's threads; undefined: V8's default (up to 48 MiB). */
export function workerYoungGenerationMb(config: Pick<Config, 'logExporters'>, o: { follow?: boolean } = {}): number | undefined {
  if (o.follow) return FOLLOW_YOUNG_GENERATION_MB;
  return config.logExporters.some(deliversDocuments) ? DOCUMENT_YOUNG_GENERATION_MB : undefined;
}

export function workerHeapLimitMb(config: Pick<Config, 'maxRowBytes'>): number {
  // Tests lower it to reach it without gigabytes of rows.
  if (knobs.workerHeapMb > 0) return knobs.workerHeapMb;
  return Math.max(1024, Math.ceil((8 * config.maxRowBytes) / MIB));
}

/**
 * The piscina pool that runs shards, for a local run and a distributed worker alike. A thread
 * that dies between tasks (out of heap while idle, say) is logged and replaced by piscina: left
 * unheard, the pool's 'error' event would end the process. `follow`: the pool of `run --follow`,
 * which lives as long as the process (workerYoungGenerationMb).
 */
export function createShardPool(config: Pick<Config, 'maxRowBytes' | 'logExporters'>, threads: number, log: Logger, o: { follow?: boolean } = {}): Piscina {
  const youngMb = workerYoungGenerationMb(config, o);
  const young = youngMb === undefined ? {} : { maxYoungGenerationSizeMb: youngMb };
  const pool = new Piscina({
    filename: workerFile(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: workerHeapLimitMb(config), ...young },
  });
  pool.on('error', (err: unknown) => log.warn({ error: errorMessage(err), heapLimitMb: workerHeapLimitMb(config) }, 'a worker thread died between shards; piscina starts another'));
  loading.set(pool, threadsLoaded(pool, threads));
  return pool;
}

/** Longest a pool's end waits for threads still loading (a thread that never loads is not waited for long). */
const LOAD_WAIT_MS = 10_000;

const loading = new WeakMap<Piscina, Promise<void>>();

function threadsLoaded(pool: Piscina, threads: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let loaded = 0;
    const done = () => {
      clearTimeout(timer);
      pool.off('message', onMessage);
      pool.off('error', done);
      resolve();
    };
    const onMessage = (message: unknown) => {
      if (message === SHARD_WORKER_LOADED && ++loaded >= threads) done();
    };
    const timer = setTimeout(done, LOAD_WAIT_MS);
    timer.unref();
    pool.on('message', onMessage);
    // A thread that dies while loading will not post: do not wait out the timer for it.
    pool.on('error', done);
  });
}

/**
 * Ends the pool, but not while one of its threads is still loading its modules. The pool starts
 * before the run's checks so that its threads boot while the main thread connects and plans, and
 * a run the checks refuse ends it at once; terminating a Node worker thread in the middle of its
 * bootstrap is a path Node has crashed on (a refused run in the suite once ended by a signal
 * instead of its exit code). Waiting costs a refused run the rest of the boot, ~0.1–0.2 s.
 */
export async function destroyShardPool(pool: Piscina): Promise<void> {
  await loading.get(pool);
  await pool.destroy();
}
