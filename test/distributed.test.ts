import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { holdsShard } from '../src/state/postgres_store.js';
import { ShardFence, StaleAttemptError } from '../src/run/distributed/fence.js';
import { shardJobId } from '../src/state/distributed_names.js';
import { fixedDb } from '../src/source/session.js';
import { PostgresStateStore } from '../src/state/postgres_store.js';
import type { RunManifest, ShardOutcome } from '../src/state/types.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { waitFor, within } from './helpers/wait.js';
import { startFakeGcs, startS3 } from './helpers/object_servers.js';
import { startBulkServer } from './helpers/bulk_server.js';
import { compareKeys } from './helpers/delivery_check.js';
import { DatadogIntake } from './helpers/platforms/datadog_server.js';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import zlib from 'node:zlib';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

/** A fresh database holding `rows` Kestra rows of the last hour, and a directory for the case's files. */
async function seededCase(label: string, rows: number, tieGroup?: number) {
  const { url, client } = await freshDatabase(`dist_${label.replace(/-/g, '_')}`);
  opened.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(3700), spanSeconds: 3600, tieGroup });
  const dir = tempDir(`dist-${label}`);
  return { url, client, dir, out: path.join(dir, 'out') };
}

/** A distributed config exporting to files in `out`: 1000-row shards, a 60 s shard timeout. */
function filesConfig(c: { url: string; dir: string; out: string }, o: { fetchSize?: number; workers?: number; file?: Record<string, unknown> } = {}): string {
  return writeConfig(c.dir, {
    source: { url: c.url, fetchSize: o.fetchSize ?? 500 }, lookbackPeriod: 'P1D', workers: o.workers ?? 1, rowsPerShard: 1000,
    queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
    logExporters: [{ id: 'files', type: 'file', directory: c.out, ...o.file }],
  });
}

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

describe('fencing a shard on its attempt number', () => {
  it('drops a stale attempt\'s done commit and acks once a newer attempt holds the shard', async () => {
    const { client } = await freshDatabase('fence', false);
    opened.push(client);
    const db = fixedDb(client);
    const store = new PostgresStateStore(db, 'logship_state', 'k');
    await store.open();
    const run: RunManifest = {
      runId: 'r1', createdAt: new Date().toISOString(), totalRows: 2,
      window: { start: { ts: '2026-01-01T00:00:00Z', key: null }, end: { ts: '2026-01-02T00:00:00Z', key: null } },
      shards: [{ index: 0, id: 's0', lo: { ts: '2026-01-01T00:00:00Z', key: null }, hi: { ts: '2026-01-02T00:00:00Z', key: null }, estimatedRows: 2 } as RunManifest['shards'][number]],
    };
    await store.beginRun(run);
    const fence = new ShardFence(db, 'logship_state', 'k');
    await fence.ensure();
    const outcome = (rows: number): ShardOutcome => ({ rows, deletedRows: null, exporters: [] });

    const stalled = await fence.claim('r1', 0, 'host-a:1');
    const fresh = await fence.claim('r1', 0, 'host-b:2');
    expect([stalled, fresh]).toEqual([1, 2]);
    await expect(fence.saveAck('r1', 0, stalled, 'es', { rows: 1 } as never)).rejects.toBeInstanceOf(StaleAttemptError);
    expect(await fence.commitDone('r1', 0, stalled, outcome(111))).toBe(false);
    expect(await fence.isDone('r1', 0)).toBe(false);

    expect(await fence.commitDone('r1', 0, fresh, outcome(2))).toBe(true);
    // The same attempt delivered again (its job retried after the commit) changes nothing either.
    expect(await fence.commitDone('r1', 0, fresh, outcome(999))).toBe(false);
    expect([...(await fence.outcomes('r1')).values()].map((o) => o.rows)).toEqual([2]);
    expect((await fence.claims('r1')).map((c) => [c.attempt, c.worker])).toEqual([[2, 'host-b:2']]);
    await store.close();
  });

  it('refuses a stale attempt\'s delete-and-commit in its read snapshot, whether the newer claim came before or after that snapshot', async () => {
    const { client, url } = await freshDatabase('fence_rr', false);
    opened.push(client);
    const db = fixedDb(client);
    const fence = new ShardFence(db, 'logship_state', 'k');
    await new PostgresStateStore(db, 'logship_state', 'k').open();
    await fence.ensure();
    const reader = new (await import('pg')).default.Client({ connectionString: url });
    await reader.connect();
    opened.push(reader);

    // The newer claim commits after the stale attempt's snapshot: the row lock is refused (40001).
    const stale = await fence.claim('r1', 0, 'host-a:1');
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT pg_current_snapshot()');
    await fence.claim('r1', 0, 'host-b:2');
    expect(await holdsShard(reader, 'logship_state', 'k', 'r1', 0, stale)).toBe(false);
    await reader.query('ROLLBACK');

    // The newer claim came before the snapshot: the attempt number no longer matches.
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT pg_current_snapshot()');
    expect(await holdsShard(reader, 'logship_state', 'k', 'r1', 0, stale)).toBe(false);
    // The holder itself passes, and keeps the claim locked until it commits.
    expect(await holdsShard(reader, 'logship_state', 'k', 'r1', 0, 2)).toBe(true);
    await reader.query('COMMIT');
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

  it('a worker stopped (SIGSTOP) past its job expiry and resumed after another finished its shard is fenced: no rename, its parts taken back, exactly the winner\'s parts remain', async () => {
    const { url, client, dir, out } = await seededCase('stall', 3000, 3);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
      queue: { shardTimeout: 'PT3S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
    });
    const names = () => listParts(out).map((f) => path.basename(f));
    const coordinator = startCli(['run', '--config', cfg, '--distributed']);
    // A is slow (300 ms a batch of 100 rows), and keeps going past its expiry once resumed, so that
    // the fence, not the expiry timer, is what stops it.
    const a = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '300', LOGSHIP_TEST_NO_ATTEMPT_EXPIRY: '1' } });
    let aLog = '';
    a.child.stderr!.on('data', (d) => (aLog += d));
    const claimOfA = async () => (await client.query<{ shard_index: number }>(
      'SELECT shard_index FROM logship_state_claims WHERE worker LIKE $1', [`%:${a.child.pid}`]).catch(() => ({ rows: [] }))).rows[0]?.shard_index;
    // Stopped once its attempt has made a part visible (attempt 1: "-a1-" in the name).
    await waitFor('worker A to publish a part of its shard', async () => a.child.exitCode !== null || names().some((n) => n.includes('-a1-')));
    expect(a.child.exitCode).toBeNull();
    const stalledShard = (await claimOfA())!;
    a.child.kill('SIGSTOP');
    const manifest = (await client.query<{ run: RunManifest }>('SELECT run FROM logship_state')).rows[0]!.run;
    const stalledId = manifest.shards.find((x) => x.index === stalledShard)!.id;
    const partsOf = (attempt: number) => names().filter((n) => n.includes(`-${stalledId}-a${attempt}-`));
    expect(partsOf(1).length).toBeGreaterThanOrEqual(1);

    const b = startCli(['worker', '--config', cfg, '--concurrency', '1']);
    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout).toMatch(/: 3\/3 shards, 3,000 rows/);
    // The winner (attempt 2) removed the stalled attempt's parts; its own are attempt-scoped.
    const winnerParts = names();
    expect(partsOf(1)).toEqual([]);
    expect(partsOf(2).length).toBeGreaterThanOrEqual(1);
    expect(winnerParts.filter((n) => n.includes(stalledId))).toEqual(partsOf(2));
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));

    // A wakes up mid-shard and reads on; its next part is refused by the fence and it takes back
    // whatever it had published, so it records nothing and leaves no file.
    a.child.kill('SIGCONT');
    await waitFor('worker A to find its attempt superseded', () => aLog.includes('attempt 1 was superseded'));
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    const [aResult, bResult] = await within('both workers to stop', Promise.all([a.done, b.done]));
    expect(aResult.code, aResult.stderr).toBe(0);
    expect(bResult.code, bResult.stderr).toBe(0);
    expect(aLog).not.toMatch(new RegExp(`"shard":${stalledShard},"attempt":1,"rows":\\d+,"msg":"shard done"`));
    expect(names()).toEqual(winnerParts);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client)); // key multiset: 0 duplicates, 0 missing
    expect(listTempFiles(out)).toEqual([]);
  });
});

describe('run --distributed with an S3 exporter (s3rver, read back through the AWS SDK)', () => {
  it('a worker stopped past its expiry and resumed is fenced before its next object is uploaded and takes back the ones it made: the bucket holds exactly the winner\'s objects', async () => {
    const s3 = await startS3(['dist']);
    try {
      const { url, client, dir } = await seededCase('s3', 3000, 3);
      const cfg = writeConfig(dir, {
        source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
        queue: { shardTimeout: 'PT3S', pollInterval: 'PT0.5S' },
        logExporters: [{ id: 's3', type: 's3', bucket: 'dist', endpoint: s3.endpoint, accessKeyId: 'S3RVER', secretKeyId: 'S3RVER', region: 'us-east-1', logFilePrefix: 'logs', maxLinesPerFile: 300, keyTemplate: '{prefix}/{prefix}-{shard}-{part}.{ext}' }],
      });
      const c = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
      const keys = async () => ((await c.send(new ListObjectsV2Command({ Bucket: 'dist', Prefix: 'logs/' }))).Contents ?? []).map((o) => o.Key!).sort();
      const docs = async () => {
        const out: string[] = [];
        for (const Key of await keys()) {
          const obj = await c.send(new GetObjectCommand({ Bucket: 'dist', Key }));
          out.push(...zlib.gunzipSync(Buffer.from(await obj.Body!.transformToByteArray())).toString('utf8').split('\n').filter(Boolean));
        }
        return out.sort();
      };
      const coordinator = startCli(['run', '--config', cfg, '--distributed']);
      const a = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '300', LOGSHIP_TEST_NO_ATTEMPT_EXPIRY: '1' } });
      let aLog = '';
      a.child.stderr!.on('data', (d) => (aLog += d));
      await waitFor('worker A to complete an object of its shard', async () => a.child.exitCode !== null || (await keys()).some((k) => k.includes('-a1-')));
      expect(a.child.exitCode).toBeNull();
      a.child.kill('SIGSTOP');
      // A's claim whose shard is not done (it may have finished an earlier one).
      const stalledShard = (await client.query<{ shard_index: number }>(
        'SELECT shard_index FROM logship_state_claims k WHERE worker LIKE $1 AND NOT EXISTS (SELECT 1 FROM logship_state_shards s WHERE s.shard_index = k.shard_index)', [`%:${a.child.pid}`])).rows[0]!.shard_index;
      const manifest = (await client.query<{ run: RunManifest }>('SELECT run FROM logship_state')).rows[0]!.run;
      const stalledId = manifest.shards.find((x) => x.index === stalledShard)!.id;
      const attemptsOf = async () => new Set((await keys()).filter((k) => k.includes(`-${stalledId}-a`)).map((k) => /-a(\d+)-\d{5}\./.exec(k)![1]));
      expect(await attemptsOf()).toContain('1');

      const b = startCli(['worker', '--config', cfg, '--concurrency', '1']);
      const finished = await within('the coordinator to finish', coordinator.done, 100_000);
      expect(finished.code, finished.stderr).toBe(0);
      // Only the winning attempt's objects of the stalled shard are left (attempt 2, or later if
      // an attempt expired under load), and the rows are exact.
      const winning = [...(await attemptsOf())];
      expect(winning).toHaveLength(1);
      expect(Number(winning[0])).toBeGreaterThanOrEqual(2);
      const winner = await keys();
      expect(await docs()).toEqual(await sourceDocs(client));

      a.child.kill('SIGCONT');
      await waitFor('worker A to find its attempt superseded', () => aLog.includes('attempt 1 was superseded'));
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      const [aResult, bResult] = await within('both workers to stop', Promise.all([a.done, b.done]));
      expect(aResult.code, aResult.stderr).toBe(0);
      expect(bResult.code, bResult.stderr).toBe(0);
      const finalKeys = await keys();
      expect(finalKeys, `EXTRA ${finalKeys.filter((k) => !winner.includes(k)).join(" ")}\n${aLog}`).toEqual(winner);
      expect(await docs()).toEqual(await sourceDocs(client)); // 0 duplicates, 0 missing
    } finally {
      await s3.stop();
    }
  });
});

describe('run --distributed fanning one run out to an object store, an index and a platform', () => {
  it('a coordinator that works and a second worker process deliver every row once to GCS, Elasticsearch (_id = key) and Datadog', async () => {
    const [gcs, es, datadog] = await Promise.all([startFakeGcs(['dist-gcs']), startBulkServer(), new DatadogIntake('dist-datadog-key').start()]);
    try {
      const { url, client, dir } = await seededCase('fanout', 4000, 3);
      const cfg = writeConfig(dir, {
        source: { url, fetchSize: 250 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
        queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
        logExporters: [
          { id: 'gcs', type: 'gcs', bucket: 'dist-gcs', endpoint: gcs.endpoint, projectId: 'test', maxLinesPerFile: 600 },
          { id: 'es', type: 'elasticsearch', indexName: 'kestra-logs', chunk: 300, connection: { hosts: [es.endpoint] } },
          { id: 'dd', type: 'datadog', basePath: datadog.url, apiKey: 'dist-datadog-key', chunk: 200 },
        ],
      });
      const worker = startCli(['worker', '--config', cfg, '--concurrency', '1', '--idle-exit', '2']);
      const r = await within('the working coordinator to finish', runCli(['run', '--config', cfg, '--distributed', '--work']), 100_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/: 4\/4 shards, 4,000 rows/);
      expect((await within('the worker to go idle and exit', worker.done)).code).toBe(0);
      const keys = (await client.query<{ key: string }>('SELECT key FROM logs ORDER BY key')).rows.map((x) => x.key);
      // Files in GCS: documents by content; the index by _id; the platform by the key attribute.
      const gcsDocs = [...gcs.objects.entries()].filter(([name]) => name.startsWith('dist-gcs/'))
        .flatMap(([, o]) => zlib.gunzipSync(o.data).toString('utf8').split('\n').filter(Boolean)).sort();
      expect(gcsDocs).toEqual(await sourceDocs(client));
      expect([...es.docs.keys()]).toEqual(['kestra-logs']);
      expect([...es.docs.get('kestra-logs')!.keys()].sort()).toEqual(keys);
      const c = compareKeys(keys, datadog.keys());
      expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
    } finally {
      await Promise.all([gcs.stop(), es.stop(), datadog.stop()]);
    }
  });
});

describe('worker processes starting together', () => {
  it('four workers started at the same moment on a fresh queue all set it up without a deadlock and drain the run', async () => {
    const { url, client, dir, out } = await seededCase('together', 3000);
    const cfg = filesConfig({ url, dir, out });
    // Each creates pg-boss's schema and the run's queues on first use, all at once.
    const workers = Array.from({ length: 4 }, () => startCli(['worker', '--config', cfg, '--concurrency', '1', '--idle-exit', '3']));
    const r = await within('the coordinator to finish', runCli(['run', '--config', cfg, '--distributed']), 100_000);
    expect(r.code, r.stderr).toBe(0);
    for (const w of workers) {
      const done = await within('a worker to go idle and exit', w.done);
      expect(done.code, done.stderr).toBe(0);
    }
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });
});

