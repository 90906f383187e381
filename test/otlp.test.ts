import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { tsToMicros } from '../src/core/keyset.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { PermanentExportError } from '../src/core/errors.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { withDeadLetter, withStarted } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows, failureOf } from './helpers/in_process.js';
import { OtlpServer } from './helpers/platforms/otlp_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * OTLP/HTTP's encodings and answers (partial success, 400 isolation, the retryable set), in
 * process against the collector fake. The delivery contract (faults, Retry-After, a wrong token,
 * an unreachable endpoint, a crash) is test/contract's; exit codes, the offset and kill -9 are
 * test/delivery_e2e.test.ts's.
 */

const TOKEN = 'otel-token-for-tests-5150';
const AUTH = { name: 'Authorization', value: `Bearer ${TOKEN}` };
const env = { OTEL_TOKEN: TOKEN };
const SEVERITY: Record<string, number> = { TRACE: 1, DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 };
const KESTRA_FIELDS = ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind'];

type Source = (key: string) => { doc: string | Record<string, unknown>; tsMicros: number };

function expectFaithfulRecords(server: OtlpServer, source: Source): void {
  for (const r of server.records) {
    const key = String(r.attributes.logship_key);
    const row = source(key);
    const doc = (typeof row.doc === 'string' ? JSON.parse(row.doc) : row.doc) as Record<string, unknown>;
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

function withCollector(body: (server: OtlpServer) => Promise<void>, options?: ConstructorParameters<typeof OtlpServer>[1]): Promise<void> {
  return withStarted(new OtlpServer(AUTH, options).start(), body);
}

function config(server: OtlpServer, extra: Record<string, unknown> = {}) {
  return withDeadLetter('otlp', {
      id: 'otel', type: 'io.kestra.plugin.ee.opentelemetry.LogExporter', otlpEndpoint: server.endpoint, authorizationHeaderName: 'Authorization',
      authorizationHeaderValue: `Bearer ${TOKEN}`, chunk: 200, concurrency: 3, minBackoff: 'PT0.01S', maxBackoff: 'PT0.2S', ...extra,
  });
}

function expectExactlyOnce(server: OtlpServer, rows: TestRow[], except: string[] = []): void {
  expect(compareKeys(rows.map((r) => r.key).filter((k) => !except.includes(k)), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
}

const byKey = (rows: TestRow[]): Source => {
  const m = new Map(rows.map((r) => [r.key, r]));
  return (key) => m.get(key)!;
};

describe('OTLP/HTTP exporter', () => {
  it.each(['http/protobuf', 'http/json'])('delivers every row exactly once over %s: exact time, spec severity numbers, Kestra attributes and the row key', async (protocol) => {
    await withCollector(async (server) => {
      const rows = kestraRows(1500);
      await exportRows(config(server, { protocol }).config, rows);
      expectExactlyOnce(server, rows);
      expectFaithfulRecords(server, byKey(rows));
      expect(server.records.every((x) => x.protocol === (protocol === 'http/json' ? 'json' : 'protobuf'))).toBe(true);
      // Every export is gzipped; the one exception is the pre-run probe (an empty request).
      expect(server.requests.filter((q) => q.headers['content-encoding'] !== 'gzip')).toHaveLength(1);
    });
  });

  it('a 500 is not retried (OTLP retries only 429/502/503/504): the shard fails at once, naming the exporter and the status message', async () => {
    await withCollector(async (server) => {
      server.failNext([{ status: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 13, message: 'exporter queue broke' }) }], (q) => q.raw.length > 0 && q.headers['content-encoding'] === 'gzip');
      const failure = await failureOf(exportRows(config(server, { protocol: 'http/json', maxAttempts: 8 }).config, kestraRows(300)));
      server.assertFaultsDelivered();
      expect(failure).toBeInstanceOf(PermanentExportError);
      expect(failure.message).toBe(`otlp exporter 'otel' (${server.endpoint}): HTTP 500 (exporter queue broke)`);
    });
  });

  it("partial_success: the request's records are dead-lettered with the collector's count and message, never retried", async () => {
    await withCollector(async (server) => {
      const rows = kestraRows(1500);
      const victim = rows[750]!.key;
      server.reject = (r) => r.attributes.logship_key === victim;
      const { config: c, deadLetter } = config(server);
      const result = await exportRows(c, rows);
      expectExactlyOnce(server, rows, [victim]);
      const dead = deadLetterRecords(deadLetter);
      // OTLP says how many were rejected, not which: the whole request is recorded (a superset).
      expect(dead.map((d) => d.key)).toContain(victim);
      expect(dead.length).toBeGreaterThan(1);
      expect(dead.length).toBeLessThanOrEqual(200);
      const source = byKey(rows);
      for (const d of dead) {
        expect(d.reason).toBe(`collector rejected 1 of the ${dead.length} log records of this request (OTLP partial_success does not say which): 1 log records rejected: attribute value too long`);
        expect(d.document).toEqual(source(String(d.key)).doc);
      }
      expect(result.deadLettered).toBe(dead.length);
    });
  });

  it('a record the collector refuses with 400 is isolated by halving and dead-lettered alone; the rest arrive once', async () => {
    await withCollector(async (server) => {
      const rows = kestraRows(1500);
      const victim = rows[42]!.key;
      server.refuse = (r) => r.attributes.logship_key === victim;
      const { config: c, deadLetter } = config(server);
      expect(await exportRows(c, rows)).toMatchObject({ deadLettered: 1 });
      expectExactlyOnce(server, rows, [victim]);
      const dead = deadLetterRecords(deadLetter);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ key: victim, reason: `otlp exporter 'otel' (${server.endpoint}): HTTP 400 (log record ${victim}: invalid attribute value)` });
    });
  });

  it('never sends an encoded body over maxBytes, and dead-letters a record that alone exceeds it', async () => {
    await withCollector(async (server) => {
      const rows: TestRow[] = kestraRows(301);
      rows[200]!.doc.message = 'x'.repeat(20_000);
      const { config: c, deadLetter } = config(server, { maxBytes: '16KiB' });
      expect(await exportRows(c, rows)).toMatchObject({ rows: 300, deadLettered: 1 });
      expect(server.requests.every((q) => q.body.length <= 16 * 1024)).toBe(true);
      expect(server.requests.length).toBeGreaterThan(5);
      expectExactlyOnce(server, rows, [rows[200]!.key]);
      const dead = deadLetterRecords(deadLetter);
      expect(dead).toHaveLength(1);
      expect(dead[0]!.reason).toMatch(/^log record of up to \d+ encoded bytes exceeds the request limit maxBytes \(16384\)$/);
    });
  });
});

describe('OTLP/HTTP exporter: the Kestra flow', () => {
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
      expectFaithfulRecords(server, (key) => source.get(key)!);
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
