import fs from 'node:fs';
import path from 'node:path';
import type { ExporterConfig } from '../../src/sinks/definition.js';
import { acksInShard, createExporter } from '../../src/sinks/registry.js';
import type { ShardDeliveryContext } from '../../src/sinks/delivery/types.js';
import type { ExporterShardResult } from '../../src/sinks/types.js';
import { batchesOf, shardOf, type TestRow } from './rows.js';

/**
 * One shard through one exporter in this process, the way a worker runs it: create the exporter
 * from its parsed config, check it, write the rows in the reader's batches, finish (abort on a
 * failure); the exporter is closed either way. Exporters that acknowledge in-shard get an
 * acknowledgement callback, as the run gives them.
 */
export async function exportRows(config: ExporterConfig, rows: readonly TestRow[], context: ShardDeliveryContext | undefined = acksInShard(config) ? { acknowledge: async () => {} } : undefined, batchSize = 100): Promise<ExporterShardResult> {
  const exporter = await createExporter(config);
  try {
    await exporter.check();
    const writer = exporter.openShard(shardOf(rows), undefined, context);
    try {
      for (const batch of batchesOf(rows, batchSize)) await writer.write(batch);
      return await writer.finish();
    } catch (err) {
      await writer.abort();
      throw err;
    }
  } finally {
    await exporter.close();
  }
}

/** The export's failure (it must fail). */
export function failureOf(p: Promise<unknown>): Promise<Error> {
  return p.then(() => {
    throw new Error('expected the export to fail');
  }, (err: unknown) => err as Error);
}

/** Every dead-letter record under `dir`, parsed. */
export function deadLetterRecords(dir: string): Record<string, unknown>[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}
