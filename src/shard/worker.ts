// Piscina worker entry: one shard per task. The logic lives in export_shard.ts so it can
// also run in-process (tests, profiling).
import '../source/pg_preload.js';
import { parentPort } from 'node:worker_threads';
import { redact } from '../core/secrets.js';
import { toWire } from '../core/errors.js';
import { SHARD_WORKER_LOADED } from './channel.js';
import { exportShard, type ShardTaskInput } from './export_shard.js';
import type { ShardOutcome } from '../state/types.js';

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
