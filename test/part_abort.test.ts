import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cli.js';

interface Outcome {
  warnings: string[];
  abortError: string | null;
  /** File (relative path) → sha256, for the aborting writer, the one beside it, and a clean run alone. */
  aborted: Record<string, string>;
  /** Finished parts the aborting writer's abort removed. */
  removedByAbort: string[];
  beside: Record<string, string>;
  clean: Record<string, string>;
}

/** Runs test/helpers/part_abort_worker.mjs in a worker thread, where shards run and Node tracks descriptors. */
function scenario(mode: 'stop' | 'enospc'): Promise<Outcome> {
  const worker = new Worker(new URL('./helpers/part_abort_worker.mjs', import.meta.url), {
    workerData: { root: tempDir(`abort-${mode}`), mode, batches: 30, rowsPerBatch: 100, failAfterWrites: 12 },
    stderr: true,
  });
  let stderr = '';
  worker.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    worker.once('message', (m: Outcome) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the scenario's worker exited with ${code} before reporting; stderr:\n${stderr}`)));
  });
}

describe('a part aborted mid-write while another shard keeps writing', () => {
  it.each([
    ['the aborting shard is stopped (a signal, a deadline, a failed destination)', 'stop', /stopped mid-part/],
    ['the aborting shard\'s disk fills up (ENOSPC on write)', 'enospc', /ENOSPC/],
  ] as const)('%s: no descriptor is closed twice, the aborted shard leaves no temp file, and the other shard\'s files are byte for byte a clean run\'s', async (_, mode, error) => {
    const outcome = await scenario(mode);
    expect(outcome.warnings).toEqual([]);
    expect(outcome.abortError).toMatch(error);
    expect(Object.keys(outcome.aborted).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    if (mode === 'stop') {
      // Its finished parts stay: a rerun of the shard replaces them, and a stop has no time to spare.
      expect(Object.keys(outcome.aborted).length).toBeGreaterThan(0);
      expect(Object.keys(outcome.aborted).length).toBeLessThan(Object.keys(outcome.clean).length);
      expect(outcome.removedByAbort).toEqual([]);
    } else {
      // A full disk: the finished parts go too, before the shard is retried, which needs their space.
      expect(outcome.removedByAbort.length).toBeGreaterThan(0);
      expect(outcome.aborted).toEqual({});
    }
    expect(Object.keys(outcome.clean).length).toBeGreaterThan(10);
    expect(outcome.beside).toEqual(outcome.clean);
  });
});
