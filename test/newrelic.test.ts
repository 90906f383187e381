import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { NewRelicLogApi, newRelicError } from './helpers/platforms/newrelic_server.js';
import { killWhen } from './helpers/wait.js';

const API_KEY = 'NRAK-0123456789ABCDEFGHIJ';
const env = { NEWRELIC_API_KEY: API_KEY };

let url: string;
let client: pg.Client;
let source: Map<string, Record<string, unknown>>;
let sourceTs: Map<string, string>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('newrelic'));
  await seedKestraLogs(client, { rows: 3000, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  const r = await client.query<{ key: string; v: Record<string, unknown>; ts: string }>(
    `SELECT key, value AS v, to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, x.v]));
  sourceTs = new Map(r.rows.map((x) => [x.key, x.ts]));
});
afterAll(() => client.end());

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let n = 0;
function config(api: NewRelicLogApi, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('nr');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `nr-${++n}`, shardAttempts: 1, ...top,
    logExporters: [{
      id: 'nr', type: 'newrelic', basePath: api.url, apiKey: "{{ secret('NEWRELIC_API_KEY') }}", chunk: 100, concurrency: 2,
      minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter: path.join(dir, 'dead'), ...extra,
    }],
  });
  return { dir, file };
}

async function withApi(body: (api: NewRelicLogApi) => Promise<void>): Promise<void> {
  const api = await new NewRelicLogApi(API_KEY).start();
  try {
    await body(api);
  } finally {
    await api.stop();
  }
}

function expectEveryRowOnce(api: NewRelicLogApi): void {
  const c = compareKeys(source.keys(), api.keys());
  expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
}

describe('newrelic exporter', () => {
  it('delivers every row once in the detailed payload: common attributes, ms timestamp, exact time, level, Kestra attributes, row key', async () => {
    await withApi(async (api) => {
      const { file } = config(api, { commonAttributes: { environment: 'test' } });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain(API_KEY);
      expectEveryRowOnce(api);
      for (const log of api.logs) {
        const key = log.attributes.logship_key as string;
        const doc = source.get(key)!;
        expect(log.message).toBe(doc.message);
        expect(log.timestamp).toBe(Math.floor(Date.parse(sourceTs.get(key)!)));
        expect(log.attributes.logship_timestamp).toBe(sourceTs.get(key));
        expect(log.attributes.logtype).toBe('kestra');
        expect(log.attributes.environment).toBe('test');
        expect(log.attributes.timestamp).toBeUndefined();
        expect(log.attributes.message).toBeUndefined();
        for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind', 'level']) expect(log.attributes[f]).toEqual(doc[f]);
      }
      const posts = api.requests;
      expect(posts.every((p) => p.headers['content-encoding'] === 'gzip' && p.headers['api-key'] === API_KEY)).toBe(true);
    });
  });

  it('loses nothing to a 429 with Retry-After, 502, 500 and a reset connection, and waits as long as Retry-After asks', async () => {
    await withApi(async (api) => {
      api.failNext([
        { status: 429, headers: { 'retry-after': '1' }, body: newRelicError(429, 'Too Many Requests').body },
        newRelicError(502, 'Bad Gateway'),
        { reset: true },
        newRelicError(500, 'Internal Server Error'),
      ]);
      const { file } = config(api);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      api.assertFaultsDelivered();
      expectEveryRowOnce(api);
      const [throttled] = api.requests;
      const resent = api.requests.find((q) => q !== throttled && q.body.equals(throttled!.body));
      expect(resent).toBeDefined();
      expect(resent!.at - throttled!.at).toBeGreaterThanOrEqual(1000);
    });
  });

  it('never sends a POST over 1 MB: uncompressed requests that would pass it are halved before sending', async () => {
    await withApi(async (api) => {
      // Requests are built to just over 1 MB of JSON here (~1,800 logs), so each must be halved before it is sent.
      const { file } = config(api, { compression: 'none', chunk: 5000 }, { workers: 1, rowsPerShard: 3000 });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectEveryRowOnce(api);
      expect(api.requests.every((q) => q.raw.length <= 1_000_000)).toBe(true);
      expect(api.maxPostBytes).toBeGreaterThan(250_000);
      expect(api.requests.every((q) => q.headers['content-encoding'] === undefined)).toBe(true);
    });
  });

  it('after a kill -9 mid-run, a rerun leaves 0 missing and at most workers × concurrency × chunk duplicates', async () => {
    await withApi(async (api) => {
      const { file } = config(api, { chunk: 50, concurrency: 2 }, { source: { url, fetchSize: 50 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '30' } }), 'a third of the rows delivered', () => api.logs.length >= 1000);
      expect(api.logs.length).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env });
      expect(rerun.code).toBe(0);
      expect(rerun.stdout).toContain('(resumed)');
      const c = compareKeys(source.keys(), api.keys());
      expect(c.missing).toHaveLength(0);
      expect(c.unexpected).toHaveLength(0);
      console.log(`newrelic kill -9: ${c.duplicates} duplicates (bound 2 × 2 × 50 = 200)`);
      expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 50);
    });
  });

  it('a wrong API key is one line naming the exporter, exit 1, no secret, and the offset does not move', async () => {
    await withApi(async (api) => {
      const { file } = config(api);
      const r = await runCli(['run', '--config', file], { env: { NEWRELIC_API_KEY: 'NRAK-wrong-7777' } });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\([^)]+\\): newrelic exporter 'nr' \\(${escapeRe(api.url)}\\): HTTP 403: Invalid API key \\(check apiKey: New Relic refused the key\\); the offset stays at the last fully exported shard and a rerun resumes from there$`));
      expect(r.stderr).not.toContain('NRAK-wrong-7777');
      expect(api.logs).toHaveLength(0);
      const stored = JSON.parse((await runCli(['state', '--config', file, '--json'], { env })).stdout) as { offset: unknown; unfinishedRun: { done: number[] } | null };
      expect(stored.offset).toBeNull();
      expect(stored.unfinishedRun?.done ?? []).toEqual([]);
    });
  });

  it('retries an unreachable host, then fails naming the exporter (exit 1)', async () => {
    const api = await new NewRelicLogApi(API_KEY).start();
    await api.stop();
    const { file } = config(api, { maxAttempts: 3 }, { workers: 1 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\([^)]+\\): newrelic exporter 'nr' \\(${escapeRe(api.url)}\\): ECONNREFUSED; gave up after 3 attempts; the offset stays`));
  });
});

describe('newrelic exporter: oversize logs', () => {
  let big: { url: string; client: pg.Client };
  beforeAll(async () => {
    big = await freshDatabase('newrelic_big');
    await seedKestraLogs(big.client, { rows: 20, start: isoAgo(3600), spanSeconds: 60 });
    // A 2 MB message: New Relic keeps 4,094 characters + 128,000 bytes of it.
    await big.client.query(`UPDATE logs SET value = jsonb_set(value, '{message}', to_jsonb(repeat('é', 1000000))) WHERE key = (SELECT min(key) FROM logs)`);
    // Ten 130 KB attributes: even as New Relic stores them, more than one POST can carry.
    await big.client.query(`UPDATE logs SET value = value || (SELECT jsonb_object_agg('big' || i, repeat('x', 130000)) FROM generate_series(1, 10) i) WHERE key = (SELECT max(key) FROM logs)`);
  });
  afterAll(() => big.client.end());

  it('cuts a long message to what New Relic stores (marked), dead-letters a log no POST can carry, exit 3', async () => {
    await withApi(async (api) => {
      const dir = tempDir('nr-big');
      const file = writeConfig(dir, {
        source: { url: big.url }, lookbackPeriod: 'P1D', workers: 1, offsetKey: 'nr-big',
        logExporters: [{ id: 'nr', type: 'io.kestra.plugin.ee.newrelic.LogExporter', basePath: api.url, apiKey: "{{ secret('NEWRELIC_API_KEY') }}", deadLetter: path.join(dir, 'dead') }],
      });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(3);
      const keys = (await big.client.query<{ key: string }>('SELECT key FROM logs ORDER BY key')).rows.map((x) => x.key);
      expect(api.logs).toHaveLength(19);
      expect(api.overlongValues).toBe(0);
      const cut = api.logs.find((l) => l.attributes.logship_key === keys[0])!;
      expect(cut.attributes.logship_truncated).toBe(true);
      expect(cut.message).toBe('é'.repeat(4094 + 64_000));
      const records = fs.readFileSync(path.join(dir, 'dead', fs.readdirSync(path.join(dir, 'dead'))[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(records.map((x) => x.key)).toEqual([keys.at(-1)]);
      expect(records[0].reason).toMatch(/^log is \d+ bytes after New Relic's per-value truncation; one New Relic POST carries at most 1000000 bytes$/);
    });
  });
});

describe('newrelic exporter: the Kestra documentation flow', () => {
  it('plans 10-new-relic.yaml with its basePath pointed at the local Log API', async () => {
    await withApi(async (api) => {
      const original = fs.readFileSync(path.resolve('fixtures/kestra-flows/docs-examples/10-new-relic.yaml'), 'utf8');
      expect(original).toContain('basePath: https://log-api.newrelic.com');
      const dir = tempDir('nr-flow');
      const flow = writeConfig(dir, original.replace('basePath: https://log-api.newrelic.com', `basePath: ${api.url}`), 'flow.yaml');
      const flowEnv = { ...env, LOGSHIP_SOURCE_URL: url };
      // Only the plan: running the flow as published (every INFO+ row once) is test/kestra_examples.test.ts's '10 New Relic'.
      const plan = await runCli(['plan', '--config', flow], { env: flowEnv });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('/log/v1');
    });
  });
});

describe('newrelic exporter: configuration errors', () => {
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ logExporters: [{ id: 'a', type: 'newrelic', apiKey: 'k', ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }
  it.each([
    ['no API key', { apiKey: undefined }, 'logExporters[0].apiKey: is required'],
    ['a basePath that is not a URL', { basePath: 'log-api.newrelic.com' }, 'logExporters[0].basePath: must be an http:// or https:// URL (got "log-api.newrelic.com")'],
    ['common attributes that are not strings', { commonAttributes: { team: 3 } }, 'logExporters[0].commonAttributes.team: must be a non-empty string (got 3)'],
    ['too many common attributes', { commonAttributes: Object.fromEntries(Array.from({ length: 255 }, (_, i) => [`a${i}`, 'v'])) }, 'logExporters[0].commonAttributes: at most 254 attributes (New Relic allows 255 per log, logtype included; got 255)'],
    ['an unknown compression', { compression: 'br' }, 'logExporters[0].compression: must be one of gzip, none (got "br")'],
  ])('%s', (_what, exporter, message) => {
    expect(errorOf(exporter)).toBe(message);
  });
});
