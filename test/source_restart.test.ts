import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createKestraSchema, seedKestraLogs } from '../src/demo/seed.js';
import { ConfigError } from '../src/core/errors.js';
import { isConnectionLoss, SourceUnavailableError } from '../src/source/connection.js';
import { shardRetryDecision } from '../src/core/retry.js';
import { isoAgo } from './helpers/db.js';
import { ownPostgres } from './helpers/own_postgres.js';
import { exportedDocs, startCli, tempDir, writeConfig } from './helpers/cli.js';

const own = ownPostgres();
const connectAdmin = own.connect;

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the source restarts in the middle of a run', () => {
  it('retries the cut-off shards over new connections, keeps its checkpoints, exits 0 and loses nothing', async () => {
    let client = await connectAdmin();
    await createKestraSchema(client);
    await seedKestraLogs(client, { rows: 12_000, start: isoAgo(3700), spanSeconds: 3600, tieGroup: 3 });
    const source = (await client.query<{ v: string }>('SELECT value::text AS v FROM logs')).rows.map((r) => r.v).sort();
    const dir = tempDir('restart');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url: own.server().url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, shardAttempts: 10,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 400 }],
    });
    const { child, done } = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });

    // Restart once the first shard is recorded done: the run has started, checkpoints exist,
    // and the other shards are mid-read.
    const shardsDone = async () => Number((await client.query('SELECT count(*)::int AS n FROM logship_state_shards').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);
    await waitFor(async () => (await shardsDone()) >= 1 || child.exitCode !== null);
    expect(child.exitCode).toBeNull();
    await client.end().catch(() => {});
    await own.server().restart();
    client = await connectAdmin();

    const r = await done;
    expect(r.stderr).toMatch(/shard failed; retrying it/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/: 12\/12 shards, 12,000 rows/);
    expect(exportedDocs(out)).toEqual(source);
    // The checkpoint written over the new main connection reached the window's end.
    const st = await client.query('SELECT run, offset_ts FROM logship_state');
    expect(st.rows[0].run).toBeNull();
    expect(st.rows[0].offset_ts).not.toBeNull();
    await client.end();
  }, 240_000);

  it('classifies lost and refused connections as transient, and query errors as not', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', '57P01', '57P02', '57P03', '08006', '08001']) {
      expect(isConnectionLoss(Object.assign(new Error('x'), { code }))).toBe(true);
    }
    expect(isConnectionLoss(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionLoss(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(false);
    expect(shardRetryDecision(new SourceUnavailableError('source cannot connect'))).toBe('retry');
    expect(shardRetryDecision(new ConfigError('source.table', 'bad'))).toBe('dont-retry');
  });
});
