// Piscina worker entry: one shard per task. The logic lives in src/run/shard_task.ts so it can
// also run in-process (tests, profiling).
import '../src/source/pg_preload.js';
import { parentPort } from 'node:worker_threads';
import { redact } from '../src/config/secrets.js';
import { toWire } from '../src/run/error_kind.js';
import { SHARD_WORKER_LOADED } from '../src/run/shard_channel.js';
import { exportShard, type ShardTaskInput } from '../src/run/shard_task.js';
import type { ShardOutcome } from '../src/state/types.js';

export default async function run(input: ShardTaskInput): Promise<ShardOutcome> {
  try {
    return await exportShard(input);
  } catch (err) {
    // Structured cloning would drop a custom error's kind, so the worker throws a plain object
    // carrying it (run.ts turns it back into an error). Tag which shard failed, and redact here
    // too since secrets registered in the main thread are not known to this one.
    const message = err instanceof Error ? err.message : String(err);
    throw toWire(err, redact(`shard ${input.shard.index} (${input.shard.id}): ${message}`));
  }
}

parentPort?.postMessage(SHARD_WORKER_LOADED);
