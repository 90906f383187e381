// The seeded case and the files config shared by the distributed-mode test files.
import path from 'node:path';
import type pg from 'pg';
import { seedKestraLogs } from '../../src/demo/seed.js';
import { freshDatabase, isoAgo } from './db.js';
import { tempDir, writeConfig } from './cli.js';

const clients: pg.Client[] = [];

/** Ends the connections seededCase opened (a file's afterAll). */
export async function endCaseClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.end()));
}

/** A fresh database holding `rows` Kestra rows of the last hour, and a directory for the case's files. */
export async function seededCase(label: string, rows: number, tieGroup?: number): Promise<{ url: string; client: pg.Client; dir: string; out: string }> {
  const { url, client } = await freshDatabase(`dist_${label.replace(/-/g, '_')}`);
  clients.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(3700), spanSeconds: 3600, tieGroup });
  const dir = tempDir(`dist-${label}`);
  return { url, client, dir, out: path.join(dir, 'out') };
}

/** A distributed config exporting to files in `out`: 1000-row shards, a 60 s shard timeout. */
export function filesConfig(c: { url: string; dir: string; out: string }, o: { fetchSize?: number; workers?: number; file?: Record<string, unknown> } = {}): string {
  return writeConfig(c.dir, {
    source: { url: c.url, fetchSize: o.fetchSize ?? 500 }, lookbackPeriod: 'P1D', workers: o.workers ?? 1, rowsPerShard: 1000,
    queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
    logExporters: [{ id: 'files', type: 'file', directory: c.out, ...o.file }],
  });
}
