import type { Bound } from '../core/keyset.js';
import type { RunManifest } from './types.js';

/**
 * The offset may only cover the contiguous prefix of finished shards: shard 3 finishing before
 * shard 2 must not move the offset past shard 2's unexported rows.
 */
export function checkpointOffset(run: RunManifest, done: { has(index: number): boolean }): Bound {
  // A late catch-up re-reads ranges behind the offset; it never moves it.
  if (run.kind === 'late') return run.window.end;
  let offset = run.window.start;
  for (const shard of run.shards) {
    if (!done.has(shard.index)) return offset;
    offset = shard.hi;
  }
  return run.window.end;
}
