// Preloaded into a logship process the tests spawn (`node --import`, see startCli): maps the
// LOGSHIP_TEST_* variables a test sets onto logship's test knobs (src/core/knobs.ts). logship
// itself reads none of them. Plain JavaScript over the compiled dist/, like the CLI it preloads.
const { setTestKnobs } = await import(new URL('../../dist/src/core/knobs.js', import.meta.url).href);

const env = process.env;
const number = (name) => (env[name] === undefined ? undefined : Number(env[name]));
const flag = (name) => (env[name] === undefined ? undefined : env[name] === '1');
const given = {
  batchDelayMs: number('LOGSHIP_TEST_BATCH_DELAY_MS'),
  holdMbPerBatch: number('LOGSHIP_TEST_HOLD_MB_PER_BATCH'),
  progressEveryBatch: flag('LOGSHIP_TEST_PROGRESS_EVERY_BATCH'),
  maxKeyedLateRows: number('LOGSHIP_TEST_MAX_KEYED_LATE_ROWS'),
  workerHeapMb: number('LOGSHIP_TEST_WORKER_HEAP_MB'),
  noAttemptExpiry: flag('LOGSHIP_TEST_NO_ATTEMPT_EXPIRY'),
  hangAfterEnqueued: number('LOGSHIP_TEST_HANG_AFTER_ENQUEUED'),
  stallFromShard: number('LOGSHIP_TEST_STALL_FROM_SHARD'),
};
const unknown = Object.keys(env).filter((k) => k.startsWith('LOGSHIP_TEST_') && !/^LOGSHIP_TEST_(BATCH_DELAY_MS|HOLD_MB_PER_BATCH|PROGRESS_EVERY_BATCH|MAX_KEYED_LATE_ROWS|WORKER_HEAP_MB|NO_ATTEMPT_EXPIRY|HANG_AFTER_ENQUEUED|STALL_FROM_SHARD)$/.test(k));
if (unknown.length > 0) throw new Error(`test/helpers/knobs.mjs: unknown test knob ${unknown.join(', ')}`);
setTestKnobs(Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)));
