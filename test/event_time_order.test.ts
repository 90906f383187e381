import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, runCli, tempDir, writeConfig } from './helpers/cli.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  for (const c of opened) await c.end().catch(() => {});
});

/**
 * A Kestra table whose heap is not in time order, as after PurgeLogs or `delete: true` freed
 * space that newer rows reused: the rows are rewritten in an order unrelated to their time
 * (md5 of the key, so every run of the test stores them alike).
 */
async function shuffledTable(label: string, rows: number, days: number) {
  const { url, client } = await freshDatabase(label);
  opened.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(days * 86_400 + 3600), spanSeconds: days * 86_400, tieGroup: 1 });
  await client.query(`CREATE TEMP TABLE seeded AS SELECT key, value FROM logs;
    TRUNCATE logs;
    INSERT INTO logs (key, value) SELECT key, value FROM seeded ORDER BY md5(key);
    ANALYZE logs`);
  const correlation = await client.query<{ c: number }>(`SELECT correlation AS c FROM pg_stats WHERE tablename = 'logs' AND attname = 'timestamp'`);
  return { url, client, correlation: Number(correlation.rows[0]?.c ?? 0) };
}

describe('event-time file names on a table stored out of time order', () => {
  it.each([
    ['a file exporter with {date} in keyTemplate', '{date}/{prefix}-{shard}-{part}.{ext}', (name: string) => name.split('/')[0]!],
    ['a file exporter with the object stores\' default {prefix}/dt={date}/hour={hour}/…', '{prefix}/dt={date}/hour={hour}/{shard}-{part}.{ext}', (name: string) => name.split('/').slice(1, 3).join('/')],
  ])('%s writes one file per partition and shard, and every row once', async (_, keyTemplate, partitionOf) => {
    const { url, client, correlation } = await shuffledTable(`order_${keyTemplate.includes('hour') ? 'hour' : 'day'}`, 12_000, 33);
    expect(Math.abs(correlation)).toBeLessThan(0.1); // the heap really is out of time order
    const dir = tempDir('event-time');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P40D', workers: 2, rowsPerShard: 4000,
      logExporters: [{ id: 'files', type: 'file', directory: out, keyTemplate }],
    });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));

    // Each shard's rows arrive in time order, so each partition a shard touches gets one part.
    const files = listParts(out).map((f) => path.relative(out, f));
    const perPartitionAndShard = new Map<string, number>();
    for (const f of files) {
      const shard = path.basename(f).split('-').slice(0, -1).join('-');
      const k = `${partitionOf(f)} ${shard}`;
      perPartitionAndShard.set(k, (perPartitionAndShard.get(k) ?? 0) + 1);
    }
    expect(Math.max(...perPartitionAndShard.values())).toBe(1);
    const partitions = new Set(files.map(partitionOf)).size;
    expect(partitions).toBeGreaterThan(30);
    // At most one extra file per partition for each shard edge inside it.
    expect(files.length).toBeLessThanOrEqual(partitions + 3);
  });
});
