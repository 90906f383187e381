import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createKestraSchema, seedKestraLogs } from '../src/demo/seed.js';
import { exportedDocs, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { isoAgo } from './helpers/db.js';
import { ownPostgres } from './helpers/own_postgres.js';
import { waitFor, within } from './helpers/wait.js';

const own = ownPostgres();
const connect = own.connect;

describe('run --follow while the source restarts', () => {
  it('keeps following through a restart mid-loop (main session and shards reconnect), then ships the rows written after it, each once', async () => {
    let client = await connect();
    await createKestraSchema(client);
    await seedKestraLogs(client, { rows: 4000, start: isoAgo(1200), spanSeconds: 600 });
    const dir = tempDir('follow-restart');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url: own.server().url, fetchSize: 200 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000, shardAttempts: 10,
      logExporters: [{ id: 'files', type: 'file', directory: out, keyTemplate: '{date}/{hour}/{prefix}-{shard}-{part}.{ext}', maxLinesPerFile: 400 }],
    });
    const follow = startCli(['run', '--config', cfg, '--follow', '--interval', 'PT0.2S'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '10' } });
    try {
      const sourceDocs = async () => (await client.query<{ v: string }>('SELECT value::text AS v FROM logs')).rows.map((r) => r.v).sort();
      const caughtUp = async () => {
        const exported = exportedDocs(out);
        const source = await sourceDocs();
        return exported.length === source.length && exported.every((d, i) => d === source[i]);
      };
      // Restart while the first cycle's shards are mid-read and its main session is idle-but-open.
      const shardsDone = async () => Number((await client.query('SELECT count(*)::int AS n FROM logship_state_shards').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);
      await waitFor('a shard of the first cycle to be checkpointed', async () => follow.child.exitCode !== null || (await shardsDone()) >= 1, 120_000);
      expect(follow.child.exitCode).toBeNull();
      await client.end().catch(() => {});
      await own.server().restart();
      client = await connect();
      await waitFor('every seeded row to be shipped after the restart', caughtUp, 120_000);

      // A second restart between cycles: the main session finds its connection gone at the next cycle.
      await client.end().catch(() => {});
      await own.server().restart();
      client = await connect();
      await seedKestraLogs(client, { rows: 300, start: isoAgo(1), spanSeconds: 0.5, seq: 1_000_000 });
      await waitFor('the rows written after the second restart to be shipped', caughtUp, 120_000);
      expect(follow.child.exitCode).toBeNull();
      follow.child.kill('SIGTERM');
      const r = await within('follow to exit', follow.done);
      expect(r.code).toBe(143);
      expect(await caughtUp()).toBe(true);
      expect(r.stderr).not.toMatch(/"level":50/);
      await client.end();
    } finally {
      if (follow.child.exitCode === null) follow.child.kill('SIGKILL');
    }
  }, 300_000);
});
