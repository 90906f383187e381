import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { holdsShard } from '../src/state/postgres_store.js';
import { ShardFence, StaleAttemptError } from '../src/run/distributed/fence.js';
import { fixedDb } from '../src/source/session.js';
import { PostgresStateStore } from '../src/state/postgres_store.js';
import type { RunManifest, ShardOutcome } from '../src/state/types.js';
import { freshDatabase, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, runCli, startCli, writeConfig } from './helpers/cli.js';
import { waitFor, within } from './helpers/wait.js';
import { startFakeGcs, startS3 } from './helpers/object_servers.js';
import { startBulkServer } from './helpers/bulk_server.js';
import { compareKeys } from './helpers/delivery_check.js';
import { DatadogIntake } from './helpers/platforms/datadog_server.js';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import zlib from 'node:zlib';
import { endCaseClients, filesConfig, seededCase } from './helpers/distributed_case.js';

// Split from distributed.test.ts so the two halves run side by side on the suite's two workers.

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
  await endCaseClients();
});

/**
 * Wakes stalled worker A, waits until it finds its attempt superseded, then stops A and B: both
 * exit 0 (a fenced attempt is not a failure of the worker).
 */
async function wakeSupersededAndStop(a: ReturnType<typeof startCli>, b: ReturnType<typeof startCli>, aLog: () => string): Promise<void> {
  a.child.kill('SIGCONT');
  await waitFor('worker A to find its attempt superseded', () => aLog().includes('attempt 1 was superseded'));
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  const [aResult, bResult] = await within('both workers to stop', Promise.all([a.done, b.done]));
  expect(aResult.code, aResult.stderr).toBe(0);
  expect(bResult.code, bResult.stderr).toBe(0);
}

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

describe('run --distributed: a stalled worker is fenced', () => {
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
    await wakeSupersededAndStop(a, b, () => aLog);
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

      await wakeSupersededAndStop(a, b, () => aLog);
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
