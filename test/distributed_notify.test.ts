import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { freePort } from '../src/demo/embedded_pg.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { Wakeup } from '../src/run/distributed/wakeup.js';
import { pgTarget } from '../src/source/tls.js';
import { jobsChannel, shardDoneChannel } from '../src/state/distributed_names.js';
import { log } from '../src/core/log.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { within } from './helpers/wait.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

async function database(label: string) {
  const db = await freshDatabase(label);
  opened.push(db.client);
  return db;
}

// Polls far longer than any test may take: what finishes did so because a notification woke it.
const NEVER_MS = 10 * 60_000;

describe('queue notifications (LISTEN/NOTIFY beside the polling)', () => {
  it('wakes a waiter on NOTIFY instead of at its poll, and keeps a notification sent between two waits', async () => {
    const { url, client } = await database('notify_wakeup');
    let calls = 0;
    const wakeup = await Wakeup.listen(pgTarget({ url, option: 'queue.url' }), 'logship_test_wake', log, () => calls++);
    try {
      const woken = wakeup.wait(NEVER_MS);
      await client.query(`SELECT pg_notify('logship_test_wake', '1')`);
      await within('the NOTIFY to wake the waiter', woken, 20_000);
      // Sent while nobody waits: the next wait returns at once rather than missing it.
      await client.query(`SELECT pg_notify('logship_test_wake', '2')`);
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => calls === 2 && (clearInterval(poll), resolve()), 10);
      });
      await within('a wait after an unseen notification to return at once', wakeup.wait(NEVER_MS), 20_000);
      expect(calls).toBe(2);
    } finally {
      await wakeup.close();
    }
  });

  it('falls back to polling when it cannot LISTEN: a wait then just lasts its poll interval', async () => {
    const port = await freePort();
    const wakeup = await Wakeup.listen(pgTarget({ url: `postgres://nobody@127.0.0.1:${port}/none`, option: 'queue.url' }), 'logship_test_wake', log);
    await within('a wait to time out as a poll', wakeup.wait(50), 20_000);
    await wakeup.close();
  });

  it('names channels as short identifiers, distinct per queue and per state table and offsetKey', () => {
    expect(jobsChannel('logship.a.12345678')).toMatch(/^logship_jobs_[0-9a-f]{16}$/);
    expect(jobsChannel('logship.a.12345678')).not.toBe(jobsChannel('logship.b.87654321'));
    expect(shardDoneChannel('logship_state', 'x'.repeat(300)).length).toBeLessThanOrEqual(63);
    expect(shardDoneChannel('logship_state', 'a')).not.toBe(shardDoneChannel('logship_state', 'b'));
    expect(shardDoneChannel('other_state', 'a')).not.toBe(shardDoneChannel('logship_state', 'a'));
  });

  it('a run with queue.pollInterval of ten minutes finishes: the worker starts on the coordinator\'s NOTIFY and the coordinator sees each shard on the done commit\'s', async () => {
    const { url, client } = await database('notify_run');
    await seedKestraLogs(client, { rows: 3000, start: isoAgo(3700), spanSeconds: 3600 });
    const dir = tempDir('dist-notify');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
      queue: { shardTimeout: 'PT60S', pollInterval: 'PT10M' },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    // Started first and idle: its one fetch found nothing, its next poll is ten minutes away.
    const worker = startCli(['worker', '--config', cfg, '--concurrency', '1']);
    let workerLog = '';
    await within('the worker to be ready', new Promise<void>((resolve) => worker.child.stderr!.on('data', (d) => {
      workerLog += d;
      if (workerLog.includes('waiting for shard jobs')) resolve();
    })));
    const finished = await within('the coordinator to finish on notifications', startCli(['run', '--config', cfg, '--distributed']).done, 90_000);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/: 3\/3 shards, 3,000 rows/);
    worker.child.kill('SIGTERM');
    expect((await within('the worker to stop', worker.done)).code).toBe(0);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });
});
