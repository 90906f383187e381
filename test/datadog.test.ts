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
import { DatadogIntake, datadogError } from './helpers/platforms/datadog_server.js';
import { killWhen } from './helpers/wait.js';

const API_KEY = 'dd-api-key-0123456789abcdef';
const env = { DD_KEY: API_KEY, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

let url: string;
let client: pg.Client;
/** key -> source document, what Datadog must end up holding. */
let source: Map<string, Record<string, unknown>>;
let sourceTs: Map<string, string>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('datadog'));
  await seedKestraLogs(client, { rows: 3000, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  const r = await client.query<{ key: string; v: Record<string, unknown>; ts: string }>(
    `SELECT key, value AS v, to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, x.v]));
  sourceTs = new Map(r.rows.map((x) => [x.key, x.ts]));
});
afterAll(() => client.end());

let n = 0;
function config(intake: DatadogIntake, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('dd');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `dd-${++n}`, shardAttempts: 1, ...top,
    logExporters: [{
      id: 'dd', type: 'datadog', basePath: intake.url, apiKey: "{{ secret('DD_KEY') }}", chunk: 100, concurrency: 2,
      minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter: path.join(dir, 'dead'), ...extra,
    }],
  });
  return { dir, file };
}

async function withIntake(body: (intake: DatadogIntake) => Promise<void>): Promise<void> {
  const intake = await new DatadogIntake(API_KEY).start();
  try {
    await body(intake);
  } finally {
    await intake.stop();
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function expectEveryRowOnce(intake: DatadogIntake): void {
  const c = compareKeys(source.keys(), intake.keys());
  expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
}

describe('datadog exporter', () => {
  it('delivers every row once as a Datadog log: message, status, exact timestamp, service, Kestra attributes, row key', async () => {
    await withIntake(async (intake) => {
      const { file } = config(intake, { ddtags: ['env:test', 'team:data'] });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.stderr).not.toContain(API_KEY);
      expect(r.code).toBe(0);
      expectEveryRowOnce(intake);
      const status: Record<string, string> = { TRACE: 'debug', DEBUG: 'debug', INFO: 'info', WARN: 'warning', ERROR: 'error' };
      for (const log of intake.logs) {
        const key = log.logship_key as string;
        const doc = source.get(key)!;
        expect(log.message).toBe(doc.message);
        expect(log.status).toBe(status[doc.level as string]);
        expect(log.timestamp).toBe(sourceTs.get(key));
        expect(log.service).toBe(doc.namespace);
        expect(log.ddsource).toBe('kestra');
        expect(log.ddtags).toBe('env:test,team:data');
        for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind', 'level']) expect(log[f]).toEqual(doc[f]);
      }
      const posts = intake.requests;
      expect(posts.every((p) => p.headers['content-encoding'] === 'gzip' && p.headers['content-type'] === 'application/json')).toBe(true);
      expect(intake.maxRequestLogs).toBe(100);
      expect(intake.oversizeLogs).toBe(0);
    });
  });

  it('loses nothing to a 429 with Retry-After, 500, 503, a reset connection and a 413, and waits as long as Retry-After asks', async () => {
    await withIntake(async (intake) => {
      intake.failNext([
        { status: 429, headers: { 'retry-after': '1' }, body: datadogError(429, 'Too Many Requests', 'rate limited').body },
        datadogError(500, 'Internal Server Error', 'try again'),
        { reset: true },
        datadogError(503, 'Service Unavailable', 'try again'),
        datadogError(413, 'Payload Too Large', 'batch is above 5MB uncompressed'),
      ]);
      const { file } = config(intake);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      intake.assertFaultsDelivered();
      expectEveryRowOnce(intake);
      // The throttled request is resent (same body) no sooner than Retry-After said.
      const [throttled] = intake.requests;
      const resent = intake.requests.find((q) => q !== throttled && q.body.equals(throttled!.body));
      expect(resent).toBeDefined();
      expect(resent!.at - throttled!.at).toBeGreaterThanOrEqual(1000);
    });
  });

  it('narrows a 400 down to the one log Datadog refuses, dead-letters it and exits 3 (0 with allowDeadLetter)', async () => {
    await withIntake(async (intake) => {
      const victim = [...source.keys()][1234]!;
      intake.refuses = (log) => log.logship_key === victim;
      const { dir, file } = config(intake);
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/logship: documents were dead-lettered: 1 by 'dd' \(see .*dead\); set allowDeadLetter: true to accept that\n$/);
      const c = compareKeys(source.keys(), intake.keys());
      expect(c.missing).toEqual([victim]);
      expect(c.duplicates).toBe(0);
      const files = fs.readdirSync(path.join(dir, 'dead'));
      expect(files).toHaveLength(1);
      const records = fs.readFileSync(path.join(dir, 'dead', files[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ exporter: 'dd', key: victim, timestamp: sourceTs.get(victim), status: 400, reason: 'HTTP 400: Bad Request: log rejected by intake' });
      expect(records[0].document.logship_key).toBe(victim);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.dd.deadLettered).toBe(1);

      intake.logs.length = 0;
      const allowed = config(intake, { allowDeadLetter: true });
      expect((await runCli(['run', '--config', allowed.file], { env })).code).toBe(0);
    });
  });

  it('after a kill -9 mid-run, a rerun leaves 0 missing and at most workers × concurrency × chunk duplicates', async () => {
    await withIntake(async (intake) => {
      const { file } = config(intake, { chunk: 50, concurrency: 2 }, { source: { url, fetchSize: 50 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '30' } }), 'a third of the rows delivered', () => intake.logs.length >= 1000);
      expect(intake.logs.length).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env });
      expect(rerun.code).toBe(0);
      expect(rerun.stdout).toContain('(resumed)');
      const c = compareKeys(source.keys(), intake.keys());
      expect(c.missing).toHaveLength(0);
      expect(c.unexpected).toHaveLength(0);
      console.log(`datadog kill -9: ${c.duplicates} duplicates (bound 2 × 2 × 50 = 200)`);
      expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 50);
    });
  });

  it('a wrong API key is one line naming the exporter, exit 1, no secret, and the offset does not move', async () => {
    await withIntake(async (intake) => {
      const { file } = config(intake);
      const r = await runCli(['run', '--config', file], { env: { ...env, DD_KEY: 'wrong-key-5555' } });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\([^)]+\\): datadog exporter 'dd' \\(${escapeRe(intake.url)}\\): HTTP 403: Forbidden: API key is invalid \\(check apiKey: Datadog refused the API key\\); the offset stays at the last fully exported shard and a rerun resumes from there$`));
      expect(r.stderr).not.toContain('wrong-key-5555');
      expect(intake.logs).toHaveLength(0);
      const state = await runCli(['state', '--config', file, '--json'], { env });
      const stored = JSON.parse(state.stdout) as { offset: unknown; unfinishedRun: { done: number[] } | null };
      expect(stored.offset).toBeNull();
      expect(stored.unfinishedRun?.done ?? []).toEqual([]);
    });
  });

  it('retries an unreachable host, then fails naming the exporter (exit 1)', async () => {
    const intake = await new DatadogIntake(API_KEY).start();
    await intake.stop(); // nothing listens on its port any more
    const { file } = config(intake, { maxAttempts: 3 }, { workers: 1 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\([^)]+\\): datadog exporter 'dd' \\(${escapeRe(intake.url)}\\): ECONNREFUSED; gave up after 3 attempts; the offset stays`));
  });
});

describe('datadog exporter: oversize logs', () => {
  let big: { url: string; client: pg.Client };
  beforeAll(async () => {
    big = await freshDatabase('datadog_big');
    await seedKestraLogs(big.client, { rows: 20, start: isoAgo(3600), spanSeconds: 60 });
    await big.client.query(`UPDATE logs SET value = jsonb_set(value, '{message}', to_jsonb(repeat('é', 700000))) WHERE key = (SELECT min(key) FROM logs)`);
    await big.client.query(`UPDATE logs SET value = jsonb_set(value, '{thread}', to_jsonb(repeat('t', 1100000))) WHERE key = (SELECT max(key) FROM logs)`);
  });
  afterAll(() => big.client.end());

  it('truncates a message over 1 MB as Datadog would (marked), dead-letters a log whose attributes alone pass 1 MB, exit 3', async () => {
    await withIntake(async (intake) => {
      const dir = tempDir('dd-big');
      const file = writeConfig(dir, {
        source: { url: big.url }, lookbackPeriod: 'P1D', workers: 1, offsetKey: 'dd-big',
        logExporters: [{ id: 'dd', type: 'io.kestra.plugin.ee.datadog.LogExporter', basePath: intake.url, apiKey: "{{ secret('DD_KEY') }}", deadLetter: path.join(dir, 'dead') }],
      });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(3);
      const keys = (await big.client.query<{ key: string }>('SELECT key FROM logs ORDER BY key')).rows.map((x) => x.key);
      expect(intake.logs).toHaveLength(19);
      expect(intake.oversizeLogs).toBe(0);
      const cut = intake.logs.find((l) => l.logship_key === keys[0])!;
      expect(cut.logship_truncated).toBe(true);
      expect((cut.message as string).length).toBeGreaterThan(400_000);
      expect('é'.repeat((cut.message as string).length)).toBe(cut.message);
      const records = fs.readFileSync(path.join(dir, 'dead', fs.readdirSync(path.join(dir, 'dead'))[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(records.map((x) => x.key)).toEqual([keys.at(-1)]);
      expect(records[0].reason).toMatch(/^log is \d+ bytes even with an empty message; Datadog accepts at most 1000000 bytes per log$/);
    });
  });
});

describe('datadog exporter: the Kestra documentation flow', () => {
  it('plans 02-datadog.yaml as written, its secrets from the environment, and prints no secret', async () => {
    await withIntake(async (intake) => {
      const flow = path.resolve('fixtures/kestra-flows/docs-examples/02-datadog.yaml');
      const flowEnv = { ...env, LOGSHIP_SOURCE_URL: url, DATADOG_INSTANCE_URL: intake.url, DATADOG_APIK_KEY: API_KEY };
      const plan = await runCli(['plan', '--config', flow], { env: flowEnv });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('***/api/v2/logs'); // basePath is a secret in this flow
      expect(plan.stdout).not.toContain(intake.url);
      // Only the plan: running the flow as written (every INFO+ row once) is test/kestra_examples.test.ts's '02 Datadog'.
    });
  });
});

describe('datadog exporter: configuration errors', () => {
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ logExporters: [{ id: 'a', type: 'datadog', apiKey: 'k', ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }
  it.each([
    ['no API key', { apiKey: undefined }, 'logExporters[0].apiKey: is required'],
    ['a basePath that is not a URL', { basePath: 'intake.datadoghq.com' }, 'logExporters[0].basePath: must be an http:// or https:// URL (got "intake.datadoghq.com")'],
    ['more than 1000 logs per request', { chunk: 1001 }, 'logExporters[0].chunk: must be an integer from 1 to 1000 (got 1001)'],
    ['ddtags that are not tags', { ddtags: 42 }, 'logExporters[0].ddtags: must be a string of comma-separated tags (env:prod,team:data) or a list of tags (got 42)'],
    ['a tag with a space', { ddtags: 'env:prod,team: data' }, 'logExporters[0].ddtags: each tag must be a non-empty key:value without spaces or commas (got "team: data")'],
    ['an unknown compression', { compression: 'zstd' }, 'logExporters[0].compression: must be one of gzip, none (got "zstd")'],
  ])('%s', (_what, exporter, message) => {
    expect(errorOf(exporter)).toBe(message);
  });
});
