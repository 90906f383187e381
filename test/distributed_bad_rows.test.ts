import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { DeadLetterFile } from '../src/source/bad_rows.js';
import type { RunManifest } from '../src/state/types.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { exportedDocs, listParts, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { waitFor, within } from './helpers/wait.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

const badRow = (key: string) => ({ key: Buffer.from(key), tsMicros: 1_700_000_000_000_000, reason: 'body is NULL', raw: null });
const superseded = () => Promise.reject(new Error('attempt superseded'));
const holds = () => Promise.resolve();
const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string });

describe('attempt-scoped dead-letter files (bad-rows-{shard}-a{n}.ndjson)', () => {
  it('a superseded attempt publishes no dead-letter file and leaves no temp; the winner removes only earlier attempts\' files', async () => {
    const dir = tempDir('dl-attempts');
    // Files of attempt 1 and of a local run (bare name) are stale for attempt 2; attempt 3's is newer.
    fs.writeFileSync(path.join(dir, 'bad-rows-7.ndjson'), '{"key":"old"}\n');
    fs.writeFileSync(path.join(dir, 'bad-rows-7-a1.ndjson'), '{"key":"one"}\n');
    fs.writeFileSync(path.join(dir, 'bad-rows-7-a3.ndjson'), '{"key":"three"}\n');
    fs.writeFileSync(path.join(dir, 'bad-rows-7-late1-a1.ndjson'), '{"key":"other shard"}\n');

    const stale = new DeadLetterFile(1024, dir, '7', { attempt: 2, check: superseded });
    stale.reject(badRow('k1'));
    await expect(stale.commit()).rejects.toThrow('attempt superseded');
    await stale.abort();
    expect(fs.readdirSync(dir).sort()).toEqual(['bad-rows-7-a3.ndjson', 'bad-rows-7-late1-a1.ndjson']);

    const winner = new DeadLetterFile(1024, dir, '7', { attempt: 4, check: holds });
    winner.reject(badRow('k1'));
    await winner.commit();
    expect(fs.readdirSync(dir).sort()).toEqual(['bad-rows-7-a4.ndjson', 'bad-rows-7-late1-a1.ndjson']);
    expect(lines(path.join(dir, 'bad-rows-7-a4.ndjson')).map((l) => l.key)).toEqual(['k1']);
  });

  it('an attempt that published its file and then does not finish takes it back', async () => {
    const dir = tempDir('dl-takeback');
    const attempt = new DeadLetterFile(1024, dir, '2', { attempt: 1, check: holds });
    attempt.reject(badRow('k9'));
    await attempt.commit();
    expect(fs.readdirSync(dir)).toEqual(['bad-rows-2-a1.ndjson']);
    await attempt.abort(); // its done commit was refused (superseded) or failed
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a local run (no attempt) replaces every earlier file of its shard, bare or attempt-scoped, and keeps the bare name', async () => {
    const dir = tempDir('dl-local');
    fs.writeFileSync(path.join(dir, 'bad-rows-5-a2.ndjson'), '{"key":"two"}\n');
    fs.writeFileSync(path.join(dir, 'bad-rows-5.ndjson'), '{"key":"old"}\n');
    const local = new DeadLetterFile(1024, dir, '5');
    local.reject(badRow('k5'));
    await local.commit();
    expect(fs.readdirSync(dir)).toEqual(['bad-rows-5.ndjson']);
    expect(lines(path.join(dir, 'bad-rows-5.ndjson')).map((l) => l.key)).toEqual(['k5']);
  });
});

describe('bad rows in distributed mode with a stalled worker', () => {
  it('a worker stopped (SIGSTOP) after dead-lettering a bad row and resumed after another finished its shard leaves exactly one record per bad row, and the report counts each once', async () => {
    const { url, client } = await freshDatabase('dist_bad_rows');
    opened.push(client);
    // Three oversized rows, one in each of the three shards, inserted first so that each shard
    // reads its bad row in its first batch (a sequential scan meets them first).
    const bigKeys = ['big-0600', 'big-1800', 'big-3000'];
    for (const key of bigKeys) {
      const at = new Date(Date.parse(isoAgo(3700)) + Number(key.slice(4)) * 1000).toISOString().replace(/(\.\d{3})Z$/, '$1000Z');
      await client.query(`INSERT INTO logs (key, value) VALUES ($1, jsonb_build_object('timestamp', $2::text, 'namespace', 'company.team', 'flowId', 'flow_1', 'level', 'INFO', 'message', repeat('x', 5000)))`, [key, at]);
    }
    await seedKestraLogs(client, { rows: 3000, start: isoAgo(3700), spanSeconds: 3600, tieGroup: 3 });
    const dir = tempDir('dist-bad-rows');
    const out = path.join(dir, 'out');
    const dead = path.join(dir, 'dead');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, maxRowBytes: '4KB', deadLetter: dead,
      queue: { shardTimeout: 'PT3S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
    });
    const report = path.join(dir, 'report.json');
    const coordinator = startCli(['run', '--config', cfg, '--distributed', '--report', report]);
    // A is slow (300 ms a batch of 100 rows) and keeps going past its expiry once resumed, so
    // that the fence, not the expiry timer, is what stops it.
    const a = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '300', LOGSHIP_TEST_NO_ATTEMPT_EXPIRY: '1' } });
    let aLog = '';
    a.child.stderr!.on('data', (d) => (aLog += d));
    const deadNames = () => (fs.existsSync(dead) ? fs.readdirSync(dead) : []);
    // Stopped once attempt 1 has dead-lettered its shard's bad row (into its hidden temp file).
    await waitFor('worker A to dead-letter a bad row', () => a.child.exitCode !== null || deadNames().some((n) => /^\.bad-rows-.*-a1\.ndjson\.\d+\.tmp$/.test(n)));
    a.child.kill('SIGSTOP');
    expect(a.child.exitCode).toBeNull();
    const stalledShard = (await client.query<{ shard_index: number }>('SELECT shard_index FROM logship_state_claims WHERE worker LIKE $1', [`%:${a.child.pid}`])).rows[0]!.shard_index;
    const manifest = (await client.query<{ run: RunManifest }>('SELECT run FROM logship_state')).rows[0]!.run;
    const stalledId = manifest.shards.find((x) => x.index === stalledShard)!.id;

    const b = startCli(['worker', '--config', cfg, '--concurrency', '1']);
    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    expect(finished.code, finished.stderr).toBe(3); // finished, with dead-lettered rows
    expect(finished.stdout).toMatch(/: 3\/3 shards, 3,000 rows/);
    a.child.kill('SIGCONT');
    await waitFor('worker A to find its attempt superseded', () => aLog.includes('attempt 1 was superseded'));
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    await within('both workers to stop', Promise.all([a.done, b.done]));

    // The stalled shard's dead letters are the winner's (attempt 2) alone; nothing of attempt 1.
    const files = deadNames().sort();
    expect(files.filter((n) => n.includes(`bad-rows-${stalledId}`))).toEqual([`bad-rows-${stalledId}-a2.ndjson`]);
    expect(files.every((n) => /^bad-rows-.+-a\d+\.ndjson$/.test(n))).toBe(true);
    const keys = files.flatMap((n) => lines(path.join(dead, n)).map((l) => l.key)).sort();
    expect(keys).toEqual(bigKeys);
    expect(JSON.parse(fs.readFileSync(report, 'utf8'))).toMatchObject({ status: 'ok', badRows: 3, rows: 3000 });
    expect(exportedDocs(out)).toHaveLength(3000);
    expect(listParts(out).some((f) => path.basename(f).includes(`-${stalledId}-a1-`))).toBe(false);
  });
});
