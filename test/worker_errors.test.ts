import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { ConfigError } from '../src/core/errors.js';
import { fromWire, kindOf, KindedError, toWire, type ErrorKind } from '../src/core/errors.js';
import { shardRetryDecision } from '../src/core/retry.js';
import { SHARD_WORKER_LOADED } from '../src/shard/channel.js';
import { createShardPool, destroyShardPool, FOLLOW_YOUNG_GENERATION_MB } from '../src/run/worker_pool.js';
import { log } from '../src/core/log.js';
import { CorruptRowError } from '../src/core/errors.js';
import { PermanentExportError } from '../src/core/errors.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { listParts, runCli, tempDir, writeConfig } from './helpers/cli.js';
import { startBulkServer, type BulkServer } from './helpers/bulk_server.js';

/** Posts a value through a real MessageChannel: the structured clone every worker result takes. */
function structuredCloneViaPort(value: unknown): Promise<unknown> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port2.once('message', (m) => {
      port1.close();
      resolve(m);
    });
    port1.postMessage(value);
  });
}

describe('error kinds across the worker-thread boundary', () => {
  it('a custom error name and code are lost by structured cloning (why the kind travels explicitly)', async () => {
    const e = new CorruptRowError('row key="k": body is NULL');
    const cloned = (await structuredCloneViaPort(e)) as Error;
    expect(cloned.name).toBe('Error');
    expect(kindOf(cloned)).toBe('transient');
  });

  it.each<[string, Error, ErrorKind]>([
    ['a corrupt row', new CorruptRowError('row key="k": body is NULL'), 'corrupt-row'],
    ['a destination refusal (401/403)', new PermanentExportError('HTTP 403'), 'permanent'],
    ['a config error', new ConfigError('source.table', 'not found'), 'config'],
    ['a source that went away', new KindedError('source-unavailable', 'connection refused'), 'source-unavailable'],
    ['an unknown failure', new Error('socket hang up'), 'transient'],
  ])('keeps the kind of %s through toWire, a real port and fromWire', async (_what, err, kind) => {
    const back = fromWire(await structuredCloneViaPort(toWire(err, `shard 0 (x): ${err.message}`)));
    expect(kindOf(back)).toBe(kind);
    expect((back as Error).message).toBe(`shard 0 (x): ${err.message}`);
    expect(shardRetryDecision(back)).toBe(kind === 'transient' || kind === 'source-unavailable' ? 'retry' : 'dont-retry');
  });
});

describe('the shard pool', () => {
  it('ended right after it started (a refused run), waits until every thread has loaded its modules before terminating it', async () => {
    const pool = createShardPool({ maxRowBytes: 10 * 1024 * 1024, logExporters: [] }, 2, log);
    let loaded = 0;
    pool.on('message', (m: unknown) => {
      if (m === SHARD_WORKER_LOADED) loaded++;
    });
    await destroyShardPool(pool);
    expect(loaded).toBe(2);
  });

  it.each<[string, Parameters<typeof createShardPool>[0]['logExporters'], boolean, (mb: number) => boolean]>([
    ['run --follow (files)', [], true, (mb) => mb === FOLLOW_YOUNG_GENERATION_MB],
    ['run --follow (Elasticsearch)', [{ id: 'es', type: 'elasticsearch' } as never], true, (mb) => mb === FOLLOW_YOUNG_GENERATION_MB],
    ['a single run (files), none: V8 default, larger', [], false, (mb) => mb > FOLLOW_YOUNG_GENERATION_MB],
    ['a single run (Elasticsearch)', [{ id: 'es', type: 'elasticsearch' } as never], false, (mb) => mb === 16],
  ])('the threads of %s run with its young-generation cap', async (_what, logExporters, follow, expected) => {
    const pool = createShardPool({ maxRowBytes: 10 * 1024 * 1024, logExporters }, 1, log, { follow });
    const loaded = new Promise<void>((resolve) => pool.on('message', (m: unknown) => m === SHARD_WORKER_LOADED && resolve()));
    try {
      await loaded;
      // The limits the running thread's isolate was created with (Node fills in V8's defaults).
      const limits = pool.threads.map((t) => t.resourceLimits?.maxYoungGenerationSizeMb ?? NaN);
      expect(limits).toHaveLength(1);
      expect(limits.every(expected), `maxYoungGenerationSizeMb ${limits.join(', ')}`).toBe(true);
    } finally {
      await destroyShardPool(pool);
    }
  });
});

describe('permanent failures in a worker fail the shard after one attempt (real piscina pool)', () => {
  let url: string;
  let client: pg.Client;
  beforeAll(async () => {
    ({ url, client } = await freshDatabase('worker_errors'));
    await seedKestraLogs(client, { rows: 300, start: isoAgo(3600), spanSeconds: 1800 });
    await client.query(`CREATE TABLE events (id text PRIMARY KEY, ts timestamptz NOT NULL, doc jsonb)`);
    await client.query(`INSERT INTO events SELECT 'ok-' || g, now() - interval '20 minutes' + g * interval '1 ms', jsonb_build_object('n', g) FROM generate_series(1, 50) g`);
    await client.query(`INSERT INTO events VALUES ('null-body-7', now() - interval '19 minutes', NULL)`);
  });
  afterAll(() => client.end());

  const retryLines = (stderr: string) => stderr.split('\n').filter((l) => l.includes('retrying'));

  it.each(['copy', 'cursor'])('a NULL body with shardAttempts: 8 fails after ONE attempt, naming the row, with no "retrying" line (%s)', async (stream) => {
    const dir = tempDir('nullbody');
    const cfg = writeConfig(dir, {
      source: { url, table: 'events', stream, columns: { timestamp: 'ts', key: 'id', level: null, namespace: null, tenant: null, body: 'doc' } },
      lookbackPeriod: 'P1D', workers: 1, shardAttempts: 8, badRows: 'fail', state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([
      expect.stringMatching(/^logship: shard 0 \(\S+\): row key="null-body-7": body is NULL; the offset stays at the last fully exported shard/),
    ]);
    expect(retryLines(r.stderr)).toEqual([]);
    expect(listParts(path.join(dir, 'out'))).toEqual([]);
  });

  it('a worker thread that runs out of its heap cap fails the shard with a plain message after its attempts, and the offset stays', async () => {
    const dir = tempDir('worker-oom');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 50 }, lookbackPeriod: 'P1D', workers: 1, shardAttempts: 2, state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const r = await runCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_WORKER_HEAP_MB: '64', LOGSHIP_TEST_HOLD_MB_PER_BATCH: '80' } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([
      expect.stringMatching(/^logship: shard 0 \(\S+\): its worker thread ran out of its 64 MiB heap; lower source\.fetchSize or the exporters' chunk/),
    ]);
    expect(retryLines(r.stderr), r.stderr).toHaveLength(1);
    expect(listParts(path.join(dir, 'out'))).toEqual([]);
    expect(JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout).offset).toBeNull();
  });

  describe('401/403 from an Elasticsearch _bulk endpoint', () => {
    let server: BulkServer;
    beforeAll(async () => {
      server = await startBulkServer();
    });
    afterAll(() => server.stop());

    function esConfig(offsetKey: string): string {
      const dir = tempDir('es403');
      return writeConfig(dir, {
        source: { url }, lookbackPeriod: 'P1D', workers: 1, shardAttempts: 8, offsetKey,
        logExporters: [{ id: 'es', type: 'elasticsearch', indexName: 'logs', chunk: 100, concurrency: 1, deadLetter: path.join(dir, 'dead'), connection: { hosts: [server.endpoint] } }],
      });
    }

    it.each([401, 403])('a whole-request %i fails the run after one shard attempt', async (status) => {
      server.bulkRequests = 0;
      server.requestStatus = () => status;
      server.itemStatus = () => undefined;
      const r = await runCli(['run', '--config', esConfig(`req-${status}`)]);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([expect.stringMatching(new RegExp(`^logship: shard 0 \\(\\S+\\): .*HTTP ${status}`))]);
      expect(retryLines(r.stderr)).toEqual([]);
      // One request per attempt (concurrency 1): eight attempts would have sent eight.
      expect(server.bulkRequests).toBe(1);
    });

    it.each([401, 403])('an item answered %i fails the run after one shard attempt', async (status) => {
      server.bulkRequests = 0;
      server.requestStatus = () => undefined;
      server.itemStatus = () => status;
      const r = await runCli(['run', '--config', esConfig(`item-${status}`)]);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([expect.stringMatching(new RegExp(`^logship: shard 0 \\(\\S+\\): .*HTTP ${status}`))]);
      expect(retryLines(r.stderr)).toEqual([]);
      expect(server.bulkRequests).toBe(1);
    });
  });
});
