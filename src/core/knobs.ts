/**
 * Hooks the tests turn to slow, squeeze or watch a run; production leaves them at their defaults.
 * logship reads no environment variable for them: a test sets them in process (setTestKnobs), and
 * a CLI the tests spawn gets them from test/helpers/knobs.mjs, preloaded with `node --import`,
 * which maps the test's LOGSHIP_TEST_* variables onto them. A worker thread has its own copy of
 * this module, so the main thread sends its knobs with every shard (ShardTaskInput.knobs).
 */
export interface TestKnobs {
  /** A shard sleeps this long after each batch it delivers (ms): a run long enough to stop or kill. */
  batchDelayMs: number;
  /** A shard holds this much JS heap per batch (MiB), to meet the worker threads' heap cap. */
  holdMbPerBatch: number;
  /** A progress message per batch and a progress line per update, instead of one every 250 ms. */
  progressEveryBatch: boolean;
  /** Late rows per range looked up by key; past it the range is scanned (tests lower it to reach the scan). */
  maxKeyedLateRows: number;
  /** The worker threads' heap cap in MiB instead of the one maxRowBytes gives (0: that one). */
  workerHeapMb: number;
  /** Distributed: an attempt runs on past its job's expiry, to prove the fence stops it. */
  noAttemptExpiry: boolean;
  /**
   * A shard whose index is at least this waits, before it reads, until it is told to stop: the
   * shards before it finish and a test's kill lands at a known point, however fast the machine.
   */
  stallFromShard: number;
  /** Distributed: the coordinator hangs after sending this many jobs, so a kill lands mid-enqueue. */
  hangAfterEnqueued: number;
}

export const DEFAULT_KNOBS: Readonly<TestKnobs> = Object.freeze({
  batchDelayMs: 0,
  holdMbPerBatch: 0,
  progressEveryBatch: false,
  maxKeyedLateRows: 2000,
  workerHeapMb: 0,
  noAttemptExpiry: false,
  hangAfterEnqueued: Infinity,
  stallFromShard: Infinity,
});

/** The knobs in force in this thread (read at use, never cached: a test may set them late). */
export const knobs: TestKnobs = { ...DEFAULT_KNOBS };

export function setTestKnobs(k: Partial<TestKnobs>): void {
  Object.assign(knobs, k);
}

/** Back to the defaults (in-process tests, between cases). */
export function resetTestKnobs(): void {
  Object.assign(knobs, DEFAULT_KNOBS);
}
