import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../src/demo/embedded_pg.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { exportedDocs, listParts, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { freshDatabase, isoAgo, sourceDocs, connectTo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { DatadogIntake, datadogError } from './helpers/platforms/datadog_server.js';
import type { Answer, ReceivedRequest } from './helpers/platform_server.js';
import { killWhen, waitFor, within } from './helpers/wait.js';

const opened: pg.Client[] = [];
/** Follow processes still running when a test fails: killed, so none outlives the file. */
const following: (ReturnType<typeof startCli> & { stderr: () => string })[] = [];
afterEach((ctx) => {
  for (const f of following.splice(0)) {
    // What the process said is the first thing to read when a test here fails.
    if (ctx.task.result?.state === 'fail') process.stderr.write(`--- follow stderr (tail) ---\n${f.stderr().slice(-4000)}\n`);
    if (f.child.exitCode === null) f.child.kill('SIGKILL');
  }
});
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end().catch(() => {})));
});

function startFollow(args: string[], opts: Parameters<typeof startCli>[1] = {}): ReturnType<typeof startCli> {
  const f = startCli(['run', ...args, '--follow'], opts);
  let err = '';
  f.child.stderr!.on('data', (d) => (err += d));
  following.push({ ...f, stderr: () => err });
  return f;
}

const connect = (url: string): Promise<pg.Client> => connectTo(url, opened);

async function database(name: string, rows: number): Promise<{ url: string; client: pg.Client; dir: string; out: string }> {
  const { url, client } = await freshDatabase(name);
  opened.push(client);
  if (rows > 0) await seedKestraLogs(client, { rows, start: isoAgo(1200), spanSeconds: 600 });
  const dir = tempDir(name.replace(/_/g, '-'));
  return { url, client, dir, out: path.join(dir, 'out') };
}

/** The stored offset's timestamp (null before the first cycle). */
async function offsetTs(client: pg.Client): Promise<string | null> {
  const r = await client.query<{ t: string | null }>(`SELECT to_char(offset_ts::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t FROM logship_state`).catch(() => ({ rows: [] as { t: string | null }[] }));
  return r.rows[0]?.t ?? null;
}

const shardsDone = async (client: pg.Client) => Number((await client.query('SELECT count(*)::int AS n FROM logship_state_shards').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

/** Every source row exported, none twice: the exported multiset equals the source's. */
async function caughtUp(client: pg.Client, out: string): Promise<boolean> {
  const exported = exportedDocs(out);
  const source = await sourceDocs(client);
  return exported.length === source.length && exported.every((d, i) => d === source[i]);
}

let seq = 1_000_000;
async function arrive(c: pg.Client, rows: number, secondsAgo = 0.5): Promise<void> {
  await seedKestraLogs(c, { rows, start: isoAgo(secondsAgo), spanSeconds: 0.2, seq });
  seq += rows;
}

/** Three 1,000-row shards on two workers, 100-row batches, parts of 200 lines: a stop or a kill lands mid-cycle. */
function smallShardsConfig(dir: string, out: string, url: string): string {
  return writeConfig(dir, {
    source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000,
    logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 200 }],
  });
}

describe('run --follow against PostgreSQL', () => {
  it('ships rows arriving during the loop, and rows committed late (behind the offset) through the late-row check: each once; SIGTERM then exits 143', async () => {
    const { url, client, dir, out } = await database('follow_arrivals', 600);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, keyTemplate: '{date}/{hour}/{prefix}-{shard}-{part}.{ext}', maxLinesPerFile: 500 }],
    });
    const follow = startFollow(['--config', cfg, '--interval', 'PT0.2S']);
    const writer = await connect(url);
    await waitFor('the seeded rows to be shipped', () => caughtUp(client, out));
    let lateTransactions = 0;
    for (let round = 0; round < 6; round++) {
      // Rows arriving steadily, committed at once.
      await arrive(writer, 20);
      // A transaction whose rows are timestamped now but commit only once the offset has passed
      // them: a cycle read their range before they were visible, so only the late check finds them.
      const open = await connect(url);
      await open.query('BEGIN');
      const stamp = new Date().toISOString();
      await seedKestraLogs(open, { rows: 15, start: isoAgo(0.2), spanSeconds: 0.1, seq });
      seq += 15;
      await waitFor('the offset to pass the open transaction\'s rows', async () => ((await offsetTs(client)) ?? '') > stamp, 60_000);
      await open.query('COMMIT');
      lateTransactions++;
      expect(follow.child.exitCode).toBeNull();
    }
    await waitFor('every row, late ones included, to be shipped', () => caughtUp(client, out));
    // A few more idle cycles: nothing is shipped twice.
    const before = await offsetTs(client);
    await waitFor('two more cycles', async () => ((await offsetTs(client)) ?? '') > before!);
    follow.child.kill('SIGTERM');
    const r = await within('follow to exit after SIGTERM', follow.done);
    expect(r.code).toBe(143);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(await caughtUp(client, out)).toBe(true);
    expect(lateTransactions).toBe(6);
    expect(listParts(out).filter((f) => /-late\d+-\d{5}\./.test(path.basename(f))).length).toBeGreaterThan(0);
    // One line per cycle that shipped something, and parts under the event-time partition.
    expect(r.stderr).toMatch(/"msg":"cycle shipped"/);
    expect(r.stderr).not.toMatch(/without an event-time partition/);
    expect(listParts(out).every((f) => /\/\d{4}-\d{2}-\d{2}\/\d{2}\/[^/]+$/.test(f))).toBe(true);
  }, 240_000);

  it('SIGTERM during a cycle stops it as a single run (exit 143, checkpoint saved); a plain run then finishes it, each row once', async () => {
    const { client, dir, out, url } = await database('follow_sigterm', 3000);
    const cfg = smallShardsConfig(dir, out, url);
    const follow = startFollow(['--config', cfg, '--interval', 'PT1S'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
    await waitFor('a shard of the first cycle to be checkpointed', async () => follow.child.exitCode !== null || (await shardsDone(client)) >= 1);
    expect(follow.child.exitCode).toBeNull();
    follow.child.kill('SIGTERM');
    const r = await within('follow to stop its cycle and exit', follow.done);
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/stopping: a cycle in flight stops at its next batch/);
    // Flat names: warned once at startup, with the template to use.
    expect(r.stderr.match(/names them without an event-time partition/g)).toHaveLength(1);
    expect(await caughtUp(client, out)).toBe(false);
    const rest = await runCli(['run', '--config', cfg]);
    expect(rest.code).toBe(0);
    expect(rest.stdout).toMatch(/\(resumed\)/);
    expect(await caughtUp(client, out)).toBe(true);
  }, 240_000);

  it('kill -9 mid-cycle, then --follow again: resumes the manifest and ships every row once, new rows included', async () => {
    const { client, dir, out, url } = await database('follow_kill', 3000);
    const cfg = smallShardsConfig(dir, out, url);
    const first = startFollow(['--config', cfg, '--interval', 'PT0.2S'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
    await killWhen(first, 'a shard of the first cycle to be checkpointed', async () => (await shardsDone(client)) >= 1);
    const writer = await connect(url);
    await arrive(writer, 50);
    const second = startFollow(['--config', cfg, '--interval', 'PT0.2S']);
    await waitFor('every row to be shipped after the resume', () => caughtUp(client, out));
    await arrive(writer, 50);
    await waitFor('the rows arriving after the resume to be shipped', () => caughtUp(client, out));
    second.child.kill('SIGTERM');
    const r = await within('follow to exit', second.done);
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/resuming an unfinished run before planning new work/);
    expect(await caughtUp(client, out)).toBe(true);
  }, 240_000);

  it('a destination outage fails cycles, which are retried with backoff (logs and metrics say so); after it every row arrives once', async () => {
    const { client, dir, url } = await database('follow_outage', 300);
    const API_KEY = 'dd-api-key-follow-0123456789';
    /** Datadog's intake, down (503) while `down` is set. */
    class FlakyIntake extends DatadogIntake {
      down = false;
      protected override handle(r: ReceivedRequest): Answer {
        return this.down ? datadogError(503, 'Service Unavailable', 'down for maintenance') : super.handle(r);
      }
    }
    const intake = await new FlakyIntake(API_KEY).start();
    try {
      const cfg = writeConfig(dir, {
        source: { url }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, shardAttempts: 1,
        logExporters: [{ id: 'dd', type: 'datadog', basePath: intake.url, apiKey: "{{ secret('DD_KEY') }}", maxAttempts: 2, minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter: path.join(dir, 'dead') }],
      });
      const port = await freePort();
      // A short --max-backoff: however many cycles fail while the intake is down (more on a busy
      // machine), the first retry after it is back comes within half a second.
      const follow = startFollow(['--config', cfg, '--interval', 'PT0.2S', '--max-backoff', 'PT0.5S', '--metrics-port', String(port)], { env: { DD_KEY: API_KEY } });
      /** A sample's value: the first line of metric `name` whose labels include `label`. */
      const metric = async (name: string, label = '') => {
        const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((res) => res.text()).catch(() => '');
        const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
        return line === undefined ? null : Number(line.split(' ').at(-1));
      };
      const sourceKeys = async () => (await client.query<{ key: string }>('SELECT key FROM logs')).rows.map((x) => x.key);
      await waitFor('the seeded rows to reach Datadog', async () => intake.logs.length >= 300);
      await waitFor('the lag gauge and last success', async () => (await metric('logship_lag_seconds')) !== null && (await metric('logship_last_success_timestamp_seconds')) !== null);

      intake.down = true;
      const writer = await connect(url);
      await arrive(writer, 40);
      await waitFor('two failed cycles', async () => ((await metric('logship_cycles_total', 'outcome="failed"')) ?? 0) >= 2);
      expect(follow.child.exitCode).toBeNull();
      // Between the attempts (not during one, when it reads running).
      await waitFor('the status gauge to show the failure', async () => (await metric('logship_run_status', 'status="failed"')) === 1);
      expect(await metric('logship_cycles_total', 'outcome="ok"')).toBeGreaterThan(0);
      intake.down = false;
      await waitFor('the rows of the outage to arrive', async () => intake.logs.length >= 340, 120_000);
      follow.child.kill('SIGTERM');
      const r = await within('follow to exit', follow.done);
      expect(r.code).toBe(143);
      expect(r.stderr).toMatch(/cycle failed; following again after a backoff/);
      expect(r.stderr).not.toContain(API_KEY);
      const c = compareKeys(await sourceKeys(), intake.keys());
      expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
    } finally {
      await intake.stop();
    }
  }, 240_000);

  it('refuses --follow with --distributed (and --interval or --max-backoff without --follow, or a bad duration) in one line, exit 2', async () => {
    const dir = tempDir('follow-refuse');
    const cfg = writeConfig(dir, { source: { url: 'postgres://u@127.0.0.1:1/db' }, logExporters: [{ id: 'f', type: 'file', directory: path.join(dir, 'o') }] });
    const a = await runCli(['run', '--config', cfg, '--follow', '--distributed']);
    expect([a.code, a.stderr]).toEqual([2, 'logship: --follow does not work with --distributed yet: run one logship run --follow per offsetKey\nsee logship run --help\n']);
    const b = await runCli(['run', '--config', cfg, '--interval', 'PT5S']);
    expect([b.code, b.stderr]).toEqual([2, 'logship: --interval applies only to run --follow\nsee logship run --help\n']);
    const c = await runCli(['run', '--config', cfg, '--follow', '--interval', 'P1M']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/^logship: --interval: must be a positive duration/);
    const d = await runCli(['run', '--config', cfg, '--max-backoff', 'PT5S']);
    expect([d.code, d.stderr]).toEqual([2, 'logship: --max-backoff applies only to run --follow\nsee logship run --help\n']);
    const e = await runCli(['run', '--config', cfg, '--follow', '--max-backoff', 'soon']);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/^logship: --max-backoff: /);
  });

  it('exits 4 when the source is unavailable at startup: nothing ran yet, the supervisor\'s restart is the retry', async () => {
    const dir = tempDir('follow-unavailable');
    const port = await freePort(); // nothing listens there
    const cfg = writeConfig(dir, { source: { url: `postgres://u@127.0.0.1:${port}/db`}, logExporters: [{ id: 'f', type: 'file', directory: path.join(dir, 'o') }] });
    const r = await runCli(['run', '--config', cfg, '--follow']);
    expect(r.code).toBe(4);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: /);
  });
});
