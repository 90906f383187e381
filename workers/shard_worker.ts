// Piscina worker entry: one shard per task. The logic lives in src/run/shard_task.ts so it can
// also run in-process (tests, profiling).
import { redact } from '../src/config/secrets.js';
import { exportShard, type ShardTaskInput } from '../src/run/shard_task.js';
import type { ShardOutcome } from '../src/state/types.js';

export default async function run(input: ShardTaskInput): Promise<ShardOutcome> {
  try {
    return await exportShard(input);
  } catch (err) {
    // Errors cross the thread boundary as plain messages; tag which shard failed, and redact
    // here too since secrets registered in the main thread are not known to this one.
    const message = err instanceof Error ? err.message : String(err);
    const e = new Error(redact(`shard ${input.shard.index} (${input.shard.id}): ${message}`));
    e.name = err instanceof Error ? err.name : 'Error';
    throw e;
  }
}
