import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { shardJobId } from '../src/state/distributed_names.js';
import type { RunManifest } from '../src/state/types.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { waitFor, within } from './helpers/wait.js';
import { endCaseClients, filesConfig, seededCase } from './helpers/distributed_case.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
  await endCaseClients();
});

const noSecrets = { env: {}, secretsDir: undefined };
const exporters = [{ id: 'a', type: 'file' }];

function configError(config: unknown): string {
  try {
    loadConfigText(YAML.stringify(config), { secrets: noSecrets });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('distributed mode configuration', () => {
  it('defaults the queue to schema logship_queue and derives the shard timeout from rowsPerShard', () => {
    const small = loadConfigText(YAML.stringify({ rowsPerShard: 1000, logExporters: exporters }), { secrets: noSecrets });
    expect(small.queue).toEqual({ url: undefined, schema: 'logship_queue', shardTimeoutMs: 15 * 60_000, pollIntervalMs: 2000 });
    const big = loadConfigText(YAML.stringify({ rowsPerShard: 5_000_000, logExporters: exporters }), { secrets: noSecrets });
    expect(big.queue!.shardTimeoutMs).toBe(5_000_000);
  });

  it.each([
    ['a schema that is no plain identifier', { schema: 'Queue-1' }, 'queue.schema: must be a plain lower-case SQL identifier (letters, digits, underscore) (got "Queue-1")'],
    ['a shard timeout under a second', { shardTimeout: 'PT0.5S' }, 'queue.shardTimeout: must be a fixed-length duration of at least 1 s (got "PT0.5S")'],
    ['a shard timeout in months', { shardTimeout: 'P1M' }, 'queue.shardTimeout: must be a fixed-length duration of at least 1 s (got "P1M")'],
    ['a poll interval under half a second', { pollInterval: 'PT0.1S' }, 'queue.pollInterval: must be a fixed-length duration of at least 0.5 s (got "PT0.1S")'],
    ['a queue url that is not postgres', { url: 'mysql://x/y' }, 'queue.url: must be a postgres:// or postgresql:// URL'],
    ['an unknown queue option', { retries: 3 }, /^queue\.retries: /],
  ])('refuses %s', (_what, queue, expected) => {
    const message = configError({ queue, logExporters: exporters });
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
  });

  it('refuses run --distributed with file state, naming state.type (exit 2)', async () => {
    const dir = tempDir('dist-file-state');
    const cfg = writeConfig(dir, { source: { url: 'postgres://127.0.0.1:1/none' }, state: { type: 'file', path: path.join(dir, 'state.json') }, logExporters: [{ id: 'a', type: 'file', directory: path.join(dir, 'out') }] });
    const r = await runCli(['run', '--config', cfg, '--distributed']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('logship: state.type: distributed mode needs state.type postgres (workers fence their shards in the state tables; got file)');
  });
});

describe('shard job ids', () => {
  it('are the same for the same shard of the same run, and differ otherwise', () => {
    const id = shardJobId('k', 'run-1', 3);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(shardJobId('k', 'run-1', 3)).toBe(id);
    expect(new Set([id, shardJobId('k', 'run-1', 4), shardJobId('k', 'run-2', 3), shardJobId('k2', 'run-1', 3)]).size).toBe(4);
  });
});


describe('run --distributed with worker processes', () => {
  it('retries the shard of a worker killed with -9 after its job expires, on the other worker, and loses nothing', async () => {
    const { url, client, dir, out } = await seededCase('kill', 4000, 3);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
      queue: { shardTimeout: 'PT5S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
    });

    const coordinator = startCli(['run', '--config', cfg, '--distributed']);
    const jobs = async () => (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM logship_queue.job WHERE state = 'created'`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]!.n;
    await waitFor('the coordinator to enqueue four shard jobs', async () => coordinator.child.exitCode !== null || (await jobs()) === 4);
    expect(coordinator.child.exitCode).toBeNull();
    const queued = await runCli(['status', '--config', cfg]);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stdout).toMatch(/^run [0-9a-f-]{36} \(created [^)]+\): 4 shards: 0 done, 0 running, 4 queued, 0 failed$/m);
    expect(queued.stdout).toContain('rows: 0 of ~4,000 (0%)');

    // Worker A is slowed (300 ms a batch of 100 rows) so that the kill lands inside its shard.
    const a = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '300' } });
    const claimOfA = async () => (await client.query<{ shard_index: number }>(
      'SELECT shard_index FROM logship_state_claims WHERE worker LIKE $1', [`%:${a.child.pid}`]).catch(() => ({ rows: [] }))).rows[0]?.shard_index;
    await waitFor('worker A to claim a shard', async () => a.child.exitCode !== null || (await claimOfA()) !== undefined);
    const killedShard = (await claimOfA())!;
    expect(a.child.exitCode).toBeNull();

    const done = await client.query(`SELECT 1 FROM logship_state_shards WHERE shard_index = $1`, [killedShard]);
    expect(done.rowCount).toBe(0); // A's shard is really unfinished when A dies
    a.child.kill('SIGKILL');
    expect((await within('worker A to die', a.done)).signal).toBe('SIGKILL');
    const b = startCli(['worker', '--config', cfg, '--concurrency', '1']);

    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/: 4\/4 shards, 4,000 rows/);
    b.child.kill('SIGTERM');
    const bResult = await within('worker B to stop', b.done);
    expect(bResult.code, bResult.stderr).toBe(0);

    // B took over A's shard as attempt 2, after pg-boss expired A's job and retried it.
    const bLog = bResult.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(bLog.some((l) => l.msg === 'shard done' && l.shard === killedShard && l.attempt === 2)).toBe(true);
    const job = await client.query<{ state: string; retry_count: number }>('SELECT state::text, retry_count FROM logship_queue.job WHERE id = $1', [shardJobId('LogShipper-state', (finished.stdout.match(/run ([0-9a-f-]{36})/) ?? [])[1]!, killedShard)]);
    expect(job.rows[0]).toMatchObject({ state: 'completed' });
    expect(job.rows[0]!.retry_count).toBeGreaterThanOrEqual(1);

    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const state = await client.query<{ run: unknown }>('SELECT run FROM logship_state');
    expect(state.rows[0]!.run).toBeNull();
    expect((await runCli(['status', '--config', cfg])).stdout).toContain('no run in progress');

    // An idle worker with --idle-exit leaves on its own once nothing has come for that long.
    const idle = await within('an idle worker to exit', runCli(['worker', '--config', cfg, '--idle-exit', '1']));
    expect(idle.code, idle.stderr).toBe(0);
    expect(idle.stdout).toMatch(/: 0 shards, 0 rows/);
  });

  it('fails the run with exit 1 naming a shard that outlived its timeout on every try, and a later run resumes it', async () => {
    const { url, client, dir, out } = await seededCase('dead', 2000);
    const base = {
      source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, shardAttempts: 1,
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    };
    const cfg = writeConfig(dir, { ...base, queue: { shardTimeout: 'PT2S', pollInterval: 'PT0.5S' } });

    // 1 s a batch of 100 rows: a 1,000-row shard needs 10 s and its job expires after 2 s.
    const slow = startCli(['worker', '--config', cfg, '--concurrency', '2'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '1000' } });
    const failed = await within('the coordinator to give up', runCli(['run', '--config', cfg, '--distributed']), 100_000);
    slow.child.kill('SIGTERM');
    await within('the slow worker to stop', slow.done);
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr).toMatch(/^logship: shard [01] .*failed on every attempt and was dead-lettered; the offset stays at the last contiguous finished shard and a rerun retries it$/m);
    const dead = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM logship_queue.job WHERE name LIKE '%.dead'`);
    expect(dead.rows[0]!.n).toBeGreaterThanOrEqual(1);

    // The rerun finds the dead-lettered job, enqueues it afresh (with this config's timeout), and finishes.
    const patient = writeConfig(dir, { ...base, queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' } }, 'patient.yaml');
    const worker = startCli(['worker', '--config', patient, '--concurrency', '2']);
    const resumed = await within('the rerun to finish', runCli(['run', '--config', patient, '--distributed']), 100_000);
    worker.child.kill('SIGTERM');
    expect((await within('the worker to stop', worker.done)).code).toBe(0);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/\(resumed\): \d\/2 shards/);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });

  it('reruns a coordinator killed while waiting: the same four jobs, no duplicates, and the rerun finalizes from the manifest', async () => {
    const { url, client, dir, out } = await seededCase('coord', 4000, 2);
    const cfg = filesConfig({ url, dir, out });
    const jobs = async () => (await client.query<{ id: string; state: string }>(`SELECT id::text, state::text FROM logship_queue.job WHERE name NOT LIKE '%.dead' ORDER BY id`).catch(() => ({ rows: [] }))).rows;

    // No worker is up: the coordinator enqueues and waits; it is killed while waiting.
    const first = startCli(['run', '--config', cfg, '--distributed']);
    await waitFor('four shard jobs', async () => first.child.exitCode !== null || (await jobs()).length === 4);
    expect(first.child.exitCode).toBeNull();
    const enqueued = await jobs();
    first.child.kill('SIGKILL');
    expect((await within('the coordinator to die', first.done)).signal).toBe('SIGKILL');

    // --no-wait re-sends the same ids (no-ops) and returns at once.
    const again = await runCli(['run', '--config', cfg, '--distributed', '--no-wait']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\(resumed\): 0\/4 shards/);
    expect(await jobs()).toEqual(enqueued);

    const worker = startCli(['worker', '--config', cfg, '--concurrency', '2']);
    const final = await within('the rerun to finalize', runCli(['run', '--config', cfg, '--distributed']), 100_000);
    worker.child.kill('SIGTERM');
    expect((await within('the worker to stop', worker.done)).code).toBe(0);
    expect(final.code, final.stderr).toBe(0);
    // How many shards this coordinator sees finish depends on how fast the worker started first
    // drains them; what must hold is the outputs and the offset, checked below.
    expect(final.stdout).toMatch(/\(resumed\): \d\/4 shards/);
    expect((await jobs()).map((j) => j.id)).toEqual(enqueued.map((j) => j.id));
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const offset = await client.query<{ offset_ts: string; run: unknown }>('SELECT offset_ts, run FROM logship_state');
    expect(offset.rows[0]!.run).toBeNull();
    expect(offset.rows[0]!.offset_ts).not.toBeNull();
  });

  it('run --distributed --work drains its own shard jobs with no separate worker, and the outputs are exact', async () => {
    const { url, client, dir, out } = await seededCase('work', 3000, 3);
    const cfg = filesConfig({ url, dir, out }, { workers: 2, file: { maxLinesPerFile: 400 } });
    const r = await within('the working coordinator to finish', runCli(['run', '--config', cfg, '--distributed', '--work']), 100_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 3\/3 shards, 3,000 rows/);
    const log = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    // This process's own worker claimed and finished every shard.
    expect(log.filter((l) => l.msg === 'shard done').map((l) => l.shard).sort()).toEqual([0, 1, 2]);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const state = await client.query<{ run: unknown; offset_ts: string | null }>('SELECT run, offset_ts FROM logship_state');
    expect(state.rows[0]).toMatchObject({ run: null });
    expect(state.rows[0]!.offset_ts).not.toBeNull();
    const jobs = await client.query<{ state: string }>(`SELECT state::text FROM logship_queue.job WHERE name NOT LIKE '%.dead'`);
    expect(jobs.rows.map((j) => j.state)).toEqual(['completed', 'completed', 'completed']);
  });

  it.each([
    [['run', '--config', 'x.yaml', '--work'], 'logship: --work applies only to run --distributed'],
    [['run', '--config', 'x.yaml', '--distributed', '--work', '--no-wait'], 'logship: --work and --no-wait exclude each other: a coordinator that works its shards waits for them'],
  ])('refuses %j (exit 2)', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(message);
  });

  it('plan --distributed warns when a planned shard may outlive queue.shardTimeout, and the coordinator logs the same warning', async () => {
    const { url, client, dir } = await seededCase('timeout', 4000);
    // Two shards of ~2,000 rows: 2 s each at the conservative 1,000 rows/s, over a 1 s timeout.
    const cfg = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 2000,
      queue: { shardTimeout: 'PT1S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const expected = /^warning: queue\.shardTimeout: shard [01] \(and 1 more\) has ~2,000 rows, about 2 s at a conservative 1,000 rows\/s, longer than the 1 s timeout: its job may expire while a worker still exports it and be run again; raise queue\.shardTimeout or lower rowsPerShard$/m;
    const plan = await runCli(['plan', '--config', cfg, '--distributed']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(expected);
    const local = await runCli(['plan', '--config', cfg]);
    expect(local.stdout).not.toContain('queue.shardTimeout');
    // A timeout that fits the shards: no warning.
    const roomy = writeConfig(dir, { source: { url }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 2000, queue: { shardTimeout: 'PT3S' }, logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }] }, 'roomy.yaml');
    expect((await runCli(['plan', '--config', roomy, '--distributed'])).stdout).not.toContain('queue.shardTimeout');

    const run = await runCli(['run', '--config', cfg, '--distributed', '--no-wait']);
    expect(run.code, run.stderr).toBe(0);
    const warned = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.msg.startsWith('queue.shardTimeout'));
    expect(warned).toHaveLength(1);
    expect(`warning: ${warned[0]!.msg}`).toMatch(expected);
  });

  it('refuses plan --distributed with file state, naming state.type (exit 2)', async () => {
    const dir = tempDir('dist-plan-file-state');
    const cfg = writeConfig(dir, { source: { url: 'postgres://127.0.0.1:1/none' }, state: { type: 'file', path: path.join(dir, 'state.json') }, logExporters: [{ id: 'a', type: 'file', directory: path.join(dir, 'out') }] });
    const r = await runCli(['plan', '--config', cfg, '--distributed']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('logship: state.type: distributed mode needs state.type postgres (workers fence their shards in the state tables; got file)');
  });

  it('reruns a coordinator killed with -9 mid-enqueue: the jobs it sent are kept, none is sent twice, and the outputs are exact', async () => {
    const { url, client, dir, out } = await seededCase('enqueue', 5000, 2);
    const cfg = filesConfig({ url, dir, out }, { file: { maxLinesPerFile: 400 } });
    const jobs = async () => (await client.query<{ id: string }>(`SELECT id::text FROM logship_queue.job WHERE name NOT LIKE '%.dead' ORDER BY id`).catch(() => ({ rows: [] }))).rows.map((j) => j.id);
    // The first coordinator stops after sending two of the five jobs, and is killed there.
    const first = startCli(['run', '--config', cfg, '--distributed'], { env: { LOGSHIP_TEST_HANG_AFTER_ENQUEUED: '2' } });
    await waitFor('two shard jobs', async () => first.child.exitCode !== null || (await jobs()).length === 2);
    expect(first.child.exitCode).toBeNull();
    const sentBeforeKill = await jobs();
    first.child.kill('SIGKILL');
    expect((await within('the coordinator to die', first.done)).signal).toBe('SIGKILL');
    expect(await jobs()).toEqual(sentBeforeKill);

    const rerun = await within('the rerun to finish', runCli(['run', '--config', cfg, '--distributed', '--work']), 100_000);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/\(resumed\): 5\/5 shards, 5,000 rows/);
    const runId = (rerun.stdout.match(/run ([0-9a-f-]{36})/) ?? [])[1]!;
    const expectedIds = [0, 1, 2, 3, 4].map((i) => shardJobId('LogShipper-state', runId, i)).sort();
    const all = await jobs();
    expect(all).toEqual(expectedIds); // one job a shard: five, not seven
    for (const id of sentBeforeKill) expect(all).toContain(id);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });

  it('retries a shard whose source connection is terminated mid-read (pg_terminate_backend), and the outputs are exact', async () => {
    const { url, client, dir, out } = await seededCase('dropped', 3000, 3);
    const cfg = filesConfig({ url, dir, out }, { fetchSize: 100, file: { maxLinesPerFile: 300 } });
    const coordinator = startCli(['run', '--config', cfg, '--distributed']);
    // Slowed (200 ms a batch of 100 rows) so that the read is surely in progress when it is cut.
    const worker = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '200' } });
    const db = (await client.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
    // The shard's backend: its COPY running, or sent and its transaction still open while the
    // slowed worker goes through the rows. Either way the shard is unfinished when it is cut.
    let pid: number | undefined;
    await waitFor('the worker to be reading a shard', async () => {
      pid = (await client.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'logship:%:worker' AND query LIKE 'COPY%' AND state IN ('active', 'idle in transaction')`, [db])).rows[0]?.pid;
      return worker.child.exitCode !== null || pid !== undefined;
    });
    expect(worker.child.exitCode).toBeNull();
    // Concurrency 1: the one claimed shard not yet done is the one being read.
    const unfinished = await client.query<{ shard_index: number }>(
      'SELECT shard_index FROM logship_state_claims k WHERE NOT EXISTS (SELECT 1 FROM logship_state_shards s WHERE s.shard_index = k.shard_index)');
    expect(unfinished.rows).toHaveLength(1);
    const cutShard = unfinished.rows[0]!.shard_index;
    const killed = await client.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    expect(killed.rows[0]!.ok).toBe(true);

    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    worker.child.kill('SIGTERM');
    const w = await within('the worker to stop', worker.done);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/: 3\/3 shards, 3,000 rows/);
    expect(w.code, w.stderr).toBe(0);
    const log = w.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.some((l) => l.msg === 'shard failed; the queue retries it' && l.shard === cutShard && /terminating connection|connection error/.test(String(l.error)))).toBe(true);
    expect(log.some((l) => l.msg === 'shard done' && l.shard === cutShard && l.attempt === 2)).toBe(true);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    expect(listTempFiles(out)).toEqual([]);
  });

  it('with delete: true, deletes only the rows it exported, while rows keep arriving in the exported range (fenced delete-and-commit)', async () => {
    const { url, client } = await freshDatabase('dist_delete');
    opened.push(client);
    // An audit of every document ever inserted, kept apart from the table logship deletes from.
    await client.query(`CREATE TABLE inserted_docs (v jsonb NOT NULL);
      CREATE FUNCTION audit_insert() RETURNS trigger AS $$ BEGIN INSERT INTO inserted_docs VALUES (NEW.value); RETURN NEW; END $$ LANGUAGE plpgsql;
      CREATE TRIGGER logs_audit AFTER INSERT ON logs FOR EACH ROW EXECUTE FUNCTION audit_insert();`);
    await seedKestraLogs(client, { rows: 5000, start: isoAgo(3700), spanSeconds: 3600 });
    const dir = tempDir('dist-delete');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, delete: true, lateRows: { horizon: 'PT0S' },
      queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 500 }],
    });
    const coordinator = startCli(['run', '--config', cfg, '--distributed']);
    const workers = [0, 1].map(() => startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '50' } }));
    // Inserts spread over the whole exported hour, one round each time another shard is done.
    const doneShards = async () => (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM logship_state_shards').catch(() => ({ rows: [{ n: 0 }] }))).rows[0]!.n;
    let seq = 1_000_000;
    let rounds = 0;
    let lastDone = -1;
    while (coordinator.child.exitCode === null) {
      const done = await doneShards();
      if (done < 5 && done > lastDone) {
        lastDone = done;
        await seedKestraLogs(client, { rows: 40, start: isoAgo(3650), spanSeconds: 3500, tieGroup: 1, seq });
        seq += 40;
        rounds++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await coordinator.done;
    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) {
      const stopped = await within('a worker to stop', w.done);
      expect(stopped.code, stopped.stderr.slice(-2000)).toBe(0);
    }
    expect(r.code, r.stderr).toBe(0);
    expect(rounds).toBeGreaterThanOrEqual(2); // the run really overlapped the inserts

    const exported = exportedDocs(out);
    const remaining = await sourceDocs(client);
    expect(remaining.length).toBeGreaterThan(0); // rows inserted after their shard's snapshot survive
    expect(new Set(exported).size).toBe(exported.length);
    const remainingSet = new Set(remaining);
    expect(exported.filter((d) => remainingSet.has(d))).toEqual([]);
    // Nothing lost: every row ever inserted is in a file or still in the table, exactly once.
    const audit = (await client.query<{ v: string }>('SELECT v::text AS v FROM inserted_docs')).rows.map((x) => x.v).sort();
    expect(audit.length).toBe(5000 + (seq - 1_000_000));
    expect([...exported, ...remaining].sort()).toEqual(audit);
    const deleted = r.stdout.match(/deleted from source: ([\d,]+) rows/);
    expect(Number(deleted![1]!.replace(/,/g, ''))).toBe(exported.length);
  });

  it('catches up late rows in distributed mode: rows committed into an exported range after its read go out once, as a late run through the queue', async () => {
    const { url, client, dir, out } = await seededCase('late', 3000, 2);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 500 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, lateRows: { horizon: 'PT2H' },
      queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    const first = await within('the first run', runCli(['run', '--config', cfg, '--distributed', '--work']), 100_000);
    expect(first.code, first.stderr).toBe(0);
    const stored = await client.query<{ reads: unknown[] }>('SELECT reads FROM logship_state');
    expect(stored.rows[0]!.reads).toHaveLength(3); // the three shards' ranges, with their snapshots

    // Rows stamped inside the exported hour, committed after it was read: late rows; and new rows
    // for the second run's window, so the check runs beside that window's shards.
    await seedKestraLogs(client, { rows: 50, start: isoAgo(3000), spanSeconds: 1800, seq: 1_000_000 });
    // (Inside the default safetyLag of 30 s after the first run's window end, outside it now.)
    await new Promise((r) => setTimeout(r, 1500));
    await seedKestraLogs(client, { rows: 300, start: isoAgo(31), spanSeconds: 0.5, seq: 2_000_000 });
    const reportFile = path.join(dir, 'second.json');
    const second = await within('the second run', runCli(['run', '--config', cfg, '--distributed', '--work', '--report', reportFile]), 100_000);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr.split('\n').filter((l) => l.includes('"session"')).map((l) => JSON.parse(l).session)).toEqual(['own']);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { late: { rows: number; rangesCaughtUp: number; rangesChecked: number }; runs: { kind: string }[] };
    expect(report.late.rows).toBe(50);
    expect(report.late.rangesChecked).toBe(3); // run 1's ranges, not the ones the second run just exported
    expect(report.late.rangesCaughtUp).toBeGreaterThanOrEqual(1);
    expect(report.runs.map((r) => r.kind)).toContain('late');
    expect(listParts(out).map((f) => path.basename(f)).filter((n) => /-late1-a1-\d{5}\./.test(n)).length).toBeGreaterThanOrEqual(1);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client)); // every row once

    // Nothing left: a third run finds no late row.
    const idleReport = path.join(dir, 'third.json');
    const third = await within('the third run', runCli(['run', '--config', cfg, '--distributed', '--work', '--report', idleReport]), 100_000);
    expect(third.code, third.stderr).toBe(0);
    expect((JSON.parse(fs.readFileSync(idleReport, 'utf8')) as { late: { rows: number } }).late.rows).toBe(0);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });

  it('sends again a shard whose job a stale worker completed while the newer attempt running it died', async () => {
    const { url, client, dir, out } = await seededCase('orphan', 2000);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 500 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
      queue: { shardTimeout: 'PT5S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    const coordinator = startCli(['run', '--config', cfg, '--distributed']);
    const jobs = async () => (await client.query<{ id: string; state: string }>(`SELECT id::text, state::text FROM logship_queue.job WHERE name NOT LIKE '%.dead' ORDER BY id`).catch(() => ({ rows: [] }))).rows;
    await waitFor('two shard jobs', async () => coordinator.child.exitCode !== null || (await jobs()).length === 2);
    expect(coordinator.child.exitCode).toBeNull();
    // What a stale worker leaves: shard 1's job completed by id, while the attempt that held it
    // (claimed an hour ago, so long past its expiry) died without finishing the shard.
    const runId = (await client.query<{ run: RunManifest }>('SELECT run FROM logship_state')).rows[0]!.run.runId;
    await client.query(`UPDATE logship_queue.job SET state = 'completed', completed_on = now() WHERE id = $1`, [shardJobId('LogShipper-state', runId, 1)]);
    await client.query(`INSERT INTO logship_state_claims (offset_key, run_id, shard_index, attempt, worker, claimed_at) VALUES ('LogShipper-state', $1, 1, 2, 'dead:1', now() - interval '1 hour')`, [runId]);

    const worker = startCli(['worker', '--config', cfg, '--concurrency', '1']);
    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    worker.child.kill('SIGTERM');
    expect((await within('the worker to stop', worker.done)).code).toBe(0);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stderr).toContain('shard jobs completed by a stale worker while their shards are unfinished; sending them again');
    expect(finished.stdout).toMatch(/: 2\/2 shards, 2,000 rows/);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });

  it('refuses --no-wait without --distributed (exit 2)', async () => {
    const r = await runCli(['run', '--config', 'x.yaml', '--no-wait']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('logship: --no-wait applies only to run --distributed');
  });
});
