import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { tsToMicros } from '../src/plan/keyset.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { OtlpServer } from './helpers/platforms/otlp_server.js';

const TOKEN = 'otel-token-for-tests-5150';
const AUTH = { name: 'Authorization', value: `Bearer ${TOKEN}` };
const env = { OTEL_TOKEN: TOKEN };
const SEVERITY: Record<string, number> = { TRACE: 1, DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 };
const KESTRA_FIELDS = ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind'];

let url: string;
let client: pg.Client;
let source: Map<string, { doc: string; tsMicros: number }>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('otlp'));
  await seedKestraLogs(client, { rows: 1500, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  const r = await client.query<{ key: string; v: string; ts: string }>(`SELECT key, value::text AS v, to_char(timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, { doc: x.v, tsMicros: tsToMicros(x.ts) }]));
});
afterAll(() => client.end());

let n = 0;
function config(endpoint: string, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('otlp');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `otlp-${++n}`, ...top,
    logExporters: [{
      id: 'otel', type: 'io.kestra.plugin.ee.opentelemetry.LogExporter', otlpEndpoint: endpoint,
      authorizationHeaderName: 'Authorization', authorizationHeaderValue: "Bearer {{ secret('OTEL_TOKEN') }}",
      chunk: 200, concurrency: 3, deadLetter: path.join(dir, 'dead'), minBackoff: 'PT0.01S', maxBackoff: 'PT0.2S', ...extra,
    }],
  });
  return { dir, file };
}

function expectExactlyOnce(server: OtlpServer, except: string[] = []): void {
  const c = compareKeys([...source.keys()].filter((k) => !except.includes(k)), server.keys());
  expect(c).toEqual({ missing: [], unexpected: [], duplicates: 0 });
}

function expectFaithfulRecords(server: OtlpServer): void {
  for (const r of server.records) {
    const key = String(r.attributes.logship_key);
    const row = source.get(key)!;
    const doc = JSON.parse(row.doc) as Record<string, unknown>;
    // The source column's exact microsecond, in nanoseconds, with no float rounding.
    expect(r.timeUnixNano).toBe(String(BigInt(row.tsMicros) * 1000n));
    expect(r.severityNumber).toBe(SEVERITY[String(doc.level)]);
    expect(r.severityText).toBe(doc.level);
    expect(r.body).toBe(doc.message);
    const attributes: Record<string, unknown> = { logship_key: key };
    for (const [k, v] of Object.entries(doc)) if (k !== 'message' && k !== 'level') attributes[k] = v;
    expect(r.attributes).toEqual(attributes);
    for (const f of KESTRA_FIELDS) if (doc[f] !== undefined) expect(r.attributes[f]).toEqual(doc[f]);
    expect(r.resource).toEqual({ 'service.name': 'kestra' });
    expect(r.scope).toBe('logship');
  }
}

function deadLetters(dir: string): Record<string, unknown>[] {
  const d = path.join(dir, 'dead');
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d).flatMap((f) => fs.readFileSync(path.join(d, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}

describe('OTLP/HTTP exporter', () => {
  it.each(['http/protobuf', 'http/json'])('delivers every row exactly once over %s: exact time, spec severity numbers, Kestra attributes and the row key', async (protocol) => {
    const server = await new OtlpServer(AUTH).start();
    try {
      const { file } = config(server.endpoint, { protocol });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectExactlyOnce(server);
      expectFaithfulRecords(server);
      expect(server.records.every((x) => x.protocol === (protocol === 'http/json' ? 'json' : 'protobuf'))).toBe(true);
      // Every export is gzipped; the one exception is the pre-run probe (an empty request).
      expect(server.requests.filter((q) => q.headers['content-encoding'] !== 'gzip')).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  it('retries 429 with Retry-After, 502, 503, 504 and a reset, and loses nothing', async () => {
    const server = await new OtlpServer(AUTH).start();
    try {
      const isExport = (q: { raw: Buffer }) => q.raw.length > 0;
      server.failNext([
        { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ code: 8, message: 'rate limited' }) },
        { status: 502 }, { status: 503 }, { status: 504 }, { reset: true },
      ], isExport);
      const { file } = config(server.endpoint, { protocol: 'http/json' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      server.assertFaultsDelivered();
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('a 500 is not retried (OTLP retries only 429/502/503/504): the run fails with one line, exit 1', async () => {
    const server = await new OtlpServer(AUTH).start();
    try {
      server.failNext([{ status: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 13, message: 'exporter queue broke' }) }], (q) => q.raw.length > 0 && q.headers['content-encoding'] === 'gzip');
      const { file } = config(server.endpoint, { protocol: 'http/json' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(1);
      server.assertFaultsDelivered();
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\(.*\\): otlp exporter 'otel' \\(${server.endpoint}\\): HTTP 500 \\(exporter queue broke\\); the offset stays`));
    } finally {
      await server.stop();
    }
  });

  it('partial_success: the request\'s records are dead-lettered with the collector\'s count and message, never retried, exit 3', async () => {
    const server = await new OtlpServer(AUTH).start();
    const victim = [...source.keys()][750]!;
    server.reject = (r) => r.attributes.logship_key === victim;
    try {
      const { dir, file } = config(server.endpoint);
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      expectExactlyOnce(server, [victim]);
      const dead = deadLetters(dir);
      // OTLP says how many were rejected, not which: the whole request is recorded (a superset).
      expect(dead.map((d) => d.key)).toContain(victim);
      expect(dead.length).toBeGreaterThan(1);
      expect(dead.length).toBeLessThanOrEqual(200);
      for (const d of dead) {
        expect(d.reason).toBe(`collector rejected 1 of the ${dead.length} log records of this request (OTLP partial_success does not say which): 1 log records rejected: attribute value too long`);
        expect(d.document).toEqual(JSON.parse(source.get(String(d.key))!.doc));
      }
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.otel.deadLettered).toBe(dead.length);
    } finally {
      await server.stop();
    }
  });

  it('a record the collector refuses with 400 is isolated by halving and dead-lettered alone; the rest arrive once', async () => {
    const server = await new OtlpServer(AUTH).start();
    const victim = [...source.keys()][42]!;
    server.refuse = (r) => r.attributes.logship_key === victim;
    try {
      const { dir, file } = config(server.endpoint);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(3);
      expectExactlyOnce(server, [victim]);
      const dead = deadLetters(dir);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ key: victim, reason: `otlp exporter 'otel' (${server.endpoint}): HTTP 400 (log record ${victim}: invalid attribute value)` });
    } finally {
      await server.stop();
    }
  });

  it('never sends an encoded body over maxBytes, and dead-letters a record that alone exceeds it', async () => {
    const { url: bigUrl, client: big } = await freshDatabase('otlp_big');
    const server = await new OtlpServer(AUTH).start();
    try {
      await seedKestraLogs(big, { rows: 300, start: isoAgo(3600), spanSeconds: 600 });
      await big.query(`INSERT INTO logs (key, value) VALUES ('huge-row', jsonb_build_object('timestamp', to_char(now() - interval '30 minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'level', 'INFO', 'namespace', 'company.team', 'flowId', 'flow_big', 'message', repeat('x', 20000)))`);
      const { dir, file } = config(server.endpoint, { maxBytes: '16KiB' }, { source: { url: bigUrl } });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(3);
      expect(server.requests.every((q) => q.body.length <= 16 * 1024)).toBe(true);
      expect(server.requests.length).toBeGreaterThan(5);
      expect(server.keys()).not.toContain('huge-row');
      expect(new Set(server.keys()).size).toBe(300);
      expect(server.keys()).toHaveLength(300);
      const dead = deadLetters(dir);
      expect(dead).toHaveLength(1);
      expect(dead[0]!.reason).toMatch(/^log record of up to \d+ encoded bytes exceeds the request limit maxBytes \(16384\)$/);
    } finally {
      await server.stop();
      await big.end();
    }
  });

  it('a kill -9 mid-run, then a rerun: 0 missing, duplicates within workers × concurrency × chunk', async () => {
    const server = await new OtlpServer(AUTH).start();
    try {
      const { file } = config(server.endpoint, { chunk: 50, concurrency: 2 }, { source: { url, fetchSize: 100 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '40' } }), '600 records at the collector', () => server.records.length >= 600);
      expect(server.records.length).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env });
      expect(rerun.code).toBe(0);
      expect(rerun.stdout).toContain('(resumed)');
      const c = compareKeys(source.keys(), server.keys());
      expect(c.missing).toEqual([]);
      expect(c.unexpected).toEqual([]);
      expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 50);
      console.log(`otlp kill -9 + rerun: ${c.duplicates} duplicate records (bound ${2 * 2 * 50})`);
    } finally {
      await server.stop();
    }
  });

  it('a wrong token: one line naming the exporter, exit 1, the offset does not move, and the token is not printed', async () => {
    const server = await new OtlpServer(AUTH).start();
    try {
      const { file } = config(server.endpoint);
      const r = await runCli(['run', '--config', file], { env: { OTEL_TOKEN: 'wrong-token-7781' } });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: otlp exporter 'otel' (${server.endpoint}): HTTP 401 (invalid or missing authorization): authentication failed: check authorizationHeaderName/authorizationHeaderValue`);
      expect(r.stderr + r.stdout).not.toContain('wrong-token-7781');
      expect(server.records).toHaveLength(0);
      const state = await runCli(['state', '--config', file, '--json'], { env });
      expect(JSON.parse(state.stdout)).toMatchObject({ offset: null, unfinishedRun: null });
    } finally {
      await server.stop();
    }
  });

  it('an unreachable endpoint is retried maxAttempts times, then fails with one line naming the exporter (exit 1)', async () => {
    const { file } = config('http://127.0.0.1:9/v1/logs', { maxAttempts: 3 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: otlp exporter 'otel' (http://127.0.0.1:9/v1/logs): ECONNREFUSED; gave up after 3 attempts`);
  });

  it("plans and runs Kestra's OpenTelemetry flow as published, pointed at the local collector", async () => {
    const server = await new OtlpServer(AUTH).start();
    try {
      const dir = tempDir('otlp-flow');
      const flow = fs.readFileSync('fixtures/kestra-flows/docs-examples/13-opentelemetry.yaml', 'utf8').replace('http://otel-collector:4318/v1/logs', server.endpoint);
      const file = writeConfig(dir, flow, 'flow.yaml');
      const flowEnv = { ...env, LOGSHIP_SOURCE_URL: url };
      const plan = await runCli(['plan', '--config', file], { env: flowEnv, cwd: dir });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain(`OTLP http/protobuf ${server.endpoint}`);
      const r = await runCli(['run', '--config', file], { env: flowEnv, cwd: dir });
      expect(r.code).toBe(0);
      const info = (await client.query<{ key: string }>(`SELECT key FROM logs WHERE value->>'level' IN ('INFO', 'WARN', 'ERROR')`)).rows.map((x) => x.key);
      expect(compareKeys(info, server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
      expectFaithfulRecords(server);
    } finally {
      await server.stop();
    }
  });
});

describe('OTLP/HTTP exporter: configuration errors', () => {
  const load = (extra: Record<string, unknown>) => loadConfigText(YAML.stringify({ logExporters: [{ id: 'o', type: 'otlp', otlpEndpoint: 'http://collector:4318/v1/logs', ...extra }] }), { secrets: { env: {}, secretsDir: undefined } });
  const errorOf = (extra: Record<string, unknown>): string => {
    try {
      load(extra);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('defaults: protobuf, gzip, service.name kestra, chunk 1000, 4 MiB; headers merge with the authorization header', () => {
    expect(load({ headers: { 'X-Tenant': 'a' }, authorizationHeaderValue: 'Bearer t' }).logExporters[0]).toMatchObject({
      type: 'otlp', protocol: 'http/protobuf', compression: 'gzip', serviceName: 'kestra', chunk: 1000, maxBytes: 4 * 1024 * 1024,
      headers: { 'X-Tenant': 'a', Authorization: 'Bearer t' },
    });
  });
  it('names a missing otlpEndpoint', () => expect(errorOf({ otlpEndpoint: undefined })).toBe('logExporters[0].otlpEndpoint: is required'));
  it('names an otlpEndpoint that is not a URL', () => expect(errorOf({ otlpEndpoint: 'grpc://collector:4317' })).toBe('logExporters[0].otlpEndpoint: must be an http:// or https:// URL (got "grpc://collector:4317")'));
  it('names an authorizationHeaderName without a value', () => expect(errorOf({ authorizationHeaderName: 'Authorization' })).toBe('logExporters[0].authorizationHeaderValue: is required with authorizationHeaderName'));
  it('names an unsupported protocol', () => expect(errorOf({ protocol: 'grpc' })).toBe('logExporters[0].protocol: must be one of http/protobuf, http/json (got "grpc")'));
  it('names a maxBytes below 1 KiB', () => expect(errorOf({ maxBytes: 10 })).toBe('logExporters[0].maxBytes: must be at least 1KiB (got 10)'));
  it('names a non-string header value', () => expect(errorOf({ headers: { 'X-Retries': 3 } })).toBe('logExporters[0].headers.X-Retries: must be a non-empty string (got 3)'));
});
