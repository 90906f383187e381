import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { ShardPace, StopControl, type Clock } from '../src/run/stop.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listTempFiles, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

class FakeClock implements Clock {
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
}

describe('when a shard may start before the deadline (driven clock)', () => {
  it('starts shards while the expected duration fits before deadline − stopGrace, then no more', () => {
    const clock = new FakeClock(1_000_000);
    const stop = new StopControl({ clock, maxDurationMs: 60_000, stopGraceMs: 10_000 });
    const pace = new ShardPace();
    // Nothing measured yet: the first shards start.
    expect(pace.expectedMs(1000)).toBeNull();
    expect(stop.mayStart(pace.expectedMs(1000))).toBe(true);
    pace.record(1000, 20_000);
    pace.record(3000, 20_000); // 10 ms per row on average
    expect(pace.expectedMs(2000)).toBe(20_000);
    clock.t += 25_000; // 25 s left before the cutoff at 50 s
    expect(stop.mayStart(pace.expectedMs(2000))).toBe(true);
    clock.t += 10_000; // 15 s left: a 20 s shard would not make it
    expect(stop.mayStart(pace.expectedMs(2000))).toBe(false);
    expect(stop.reason).toBe('deadline');
    // Once stopping, nothing starts, however small.
    expect(stop.mayStart(pace.expectedMs(1))).toBe(false);
  });

  it('never starts a shard past the cutoff, and a signal outranks the deadline', () => {
    const clock = new FakeClock(0);
    const stop = new StopControl({ clock, maxDurationMs: 40_000, stopGraceMs: 30_000 });
    clock.t = 10_000;
    expect(stop.mayStart(null)).toBe(false);
    const stopped: string[] = [];
    stop.track(() => stopped.push('late shard'));
    expect(stopped).toEqual([]);
    stop.request('SIGTERM');
    expect(stopped).toEqual(['late shard']);
    expect(stop.reason).toBe('SIGTERM');
    expect(stop.stopping).toBe(true);
  });

  it('without maxDuration only a signal stops it', () => {
    const stop = new StopControl({ clock: new FakeClock(0), maxDurationMs: null, stopGraceMs: 30_000 });
    expect(stop.mayStart(1e12)).toBe(true);
    stop.request('SIGINT');
    expect(stop.mayStart(null)).toBe(false);
  });
});

async function setup(label: string, rows: number) {
  const { url, client } = await freshDatabase(label);
  opened.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(3700), spanSeconds: 3600, tieGroup: 3 });
  const dir = tempDir(label);
  const out = path.join(dir, 'out');
  const cfg = writeConfig(dir, {
    source: { url, fetchSize: 50 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, stopGrace: 'PT1S',
    logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
  });
  return { client, dir, out, cfg };
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const shardsDone = async (client: pg.Client) =>
  Number((await client.query('SELECT count(*)::int AS n FROM logship_state_shards').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

// 20 batches of 50 rows per shard at 100 ms each: a shard takes at least 2 s, and the 12 shards on
// 2 workers at least 12 s, so a 4 s budget always ends mid-run, whatever the machine's speed.
const SLOW = { LOGSHIP_TEST_BATCH_DELAY_MS: '100' };

describe('deadlines and signals, then a rerun: nothing lost, nothing duplicated', () => {
  it('stops at --max-duration with a partial report and exit 0; the rerun completes the multiset', async () => {
    const { client, dir, out, cfg } = await setup('deadline', 12_000);
    const reportFile = path.join(dir, 'report.json');
    const r = await runCli(['run', '--config', cfg, '--max-duration', 'PT4S', '--report', reportFile], { env: SLOW });
    expect(r.code, r.stderr).toBe(0);
    const m = r.stdout.match(/^stopped at deadline: (\d+) of (\d+) shards left; run again to resume$/m);
    expect(m).not.toBeNull();
    const left = Number(m![1]);
    expect(Number(m![2])).toBe(12);
    expect(left).toBeGreaterThan(0);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
    expect(report.status).toBe('partial');
    expect(report.stopped).toEqual({ reason: 'deadline', shardsLeft: left, shardsTotal: 12 });
    expect(await shardsDone(client)).toBe(12 - left);
    expect(listTempFiles(out)).toEqual([]); // stopped shards removed their temp files

    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain(`(resumed): ${left}/12 shards`);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 240_000);

  // Stopped mid-part: open parts are aborted while other shards' parts are still being written
  // (startCli fails the test on any Node warning, such as a descriptor closed twice).
  it.each([['SIGTERM', 143], ['SIGINT', 130]] as const)('%s mid-run stops gracefully, checkpoints and exits %i; the rerun completes the multiset', async (signal, exitCode) => {
    const { client, out, cfg } = await setup(signal.toLowerCase(), 12_000);
    const { child, done } = startCli(['run', '--config', cfg], { env: SLOW });
    await waitFor(async () => (await shardsDone(client)) >= 2 || child.exitCode !== null);
    expect(child.exitCode).toBeNull();
    child.kill(signal);
    const r = await done;
    expect(r.code, r.stderr).toBe(exitCode);
    const m = r.stdout.match(new RegExp(`^stopped by ${signal}: (\\d+) of 12 shards left; run again to resume$`, 'm'));
    expect(m).not.toBeNull();
    const left = Number(m![1]);
    expect(left).toBeGreaterThan(0);
    expect(await shardsDone(client)).toBe(12 - left);
    expect(listTempFiles(out)).toEqual([]);

    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain(`(resumed): ${left}/12 shards`);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 240_000);

  it('SIGTERM mid-COPY when the role has no session left to cancel it: the shard drains its COPY, stops, exits 143; the rerun completes the multiset', async () => {
    const { client, out } = await setup('sigterm_nocancel', 6000);
    // Two sessions: the run's own and its one worker's. The COPY's cancel needs a third.
    const role = 'nocancel';
    await client.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2 PASSWORD 'pw'`);
    await client.query(`GRANT SELECT, DELETE ON logs TO ${role}; GRANT CREATE ON SCHEMA public TO ${role}`);
    const url = (client as unknown as { connectionParameters: { port: number; database: string } }).connectionParameters;
    const dir = tempDir('sigterm-nocancel-cfg');
    const cfg = writeConfig(dir, {
      source: { url: `postgres://${role}:pw@127.0.0.1:${url.port}/${url.database}`, fetchSize: 50 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, stopGrace: 'PT1S',
      state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
    });
    const { child, done } = startCli(['run', '--config', cfg], { env: SLOW });
    // Mid-shard: its first part is being written while the COPY is paused behind the slow batches.
    await waitFor(async () => listTempFiles(out).length > 0 || child.exitCode !== null);
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code, r.stderr).toBe(143);
    expect(listTempFiles(out)).toEqual([]);
    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 120_000);

  it('a second SIGINT exits at once with 130; the rerun still completes the multiset', async () => {
    const { client, out, cfg } = await setup('sigint2', 8000);
    // 5 s per batch: the graceful stop (which waits for the next batch) is still under way when
    // the second signal arrives. Two signals sent back to back may merge into one, so the second
    // is sent only once the first has been acknowledged.
    const { child, done } = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '5000' } });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await waitFor(async () => listTempFiles(out).length > 0 || child.exitCode !== null);
    expect(child.exitCode).toBeNull();
    child.kill('SIGINT');
    await waitFor(async () => stderr.includes('stopping:') || child.exitCode !== null);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('second SIGINT: exiting at once');

    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code).toBe(0);
    expect(listTempFiles(out)).toEqual([]);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 240_000);

  it('rejects a bad --max-duration with exit 2, naming the flag', async () => {
    const { cfg } = await setup('maxdur_flag', 10);
    const r = await runCli(['run', '--config', cfg, '--max-duration', 'PT1S']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: --max-duration: must be longer than stopGrace (1 s) (got "PT1S")\n');
  });
});
