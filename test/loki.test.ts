import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { tsToMicros } from '../src/plan/keyset.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { LokiServer } from './helpers/platforms/loki_server.js';

let url: string;
let client: pg.Client;
/** key -> value text. */
let source: Map<string, string>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('loki'));
  // A three-day backfill: shards of about twelve hours each, far longer than Loki's one-hour window.
  await seedKestraLogs(client, { rows: 6000, start: isoAgo(73 * 3600), spanSeconds: 72 * 3600 });
  const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
  source = new Map(r.rows.map((x) => [x.key, x.v]));
});
afterAll(() => client.end());

const TOKEN = 'loki-token-7f3a';
const env = { LOKI_TOKEN: TOKEN };
let n = 0;

function config(server: LokiServer, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('loki');
  const file = writeConfig(dir, {
    source: { url, fetchSize: 200 }, lookbackPeriod: 'P4D', workers: 2, rowsPerShard: 1000, offsetKey: `loki-${++n}`, ...top,
    logExporters: [{
      id: 'loki', type: 'io.kestra.plugin.ee.loki.LogExporter', url: server.url, tenantId: 'team-a', bearerToken: "{{ secret('LOKI_TOKEN') }}",
      chunk: 200, concurrency: 3, deadLetter: path.join(dir, 'dead'), minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
    }],
  });
  return { dir, file };
}

/** The pushes that carried entries (the startup check pushes an empty JSON body). */
const pushes = (server: LokiServer) => server.requests.filter((q) => q.body.toString() !== '{"streams":[]}');
const keysOf = (server: LokiServer) => server.entries().map((e) => e.entry.metadata.logship_key!);

function expectExactlyOnce(server: LokiServer): void {
  const c = compareKeys(source.keys(), keysOf(server));
  expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
}

async function offsetOf(file: string): Promise<unknown> {
  const r = await runCli(['state', '--config', file, '--json'], { env });
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { offset: unknown }).offset;
}

describe('loki exporter', () => {
  it('pushes every row once as snappy protobuf: labels job/namespace/level, exact timestamps, the document with its key as the line, other fields as structured metadata', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.stderr).not.toContain(TOKEN);
      expect(r.code).toBe(0);
      expectExactlyOnce(server);
      expect(pushes(server).every((q) => q.headers['content-type'] === 'application/x-protobuf' && q.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
      for (const { stream, entry } of server.entries()) {
        const key = entry.metadata.logship_key!;
        const doc = JSON.parse(source.get(key)!) as Record<string, unknown>;
        expect(stream).toBe(`{job="kestra", level=${JSON.stringify(doc.level)}, namespace=${JSON.stringify(doc.namespace)}}`);
        expect(entry.ns).toBe(`${tsToMicros(doc.timestamp as string)}000`);
        expect(JSON.parse(entry.line)).toEqual({ logship_key: key, ...doc });
        expect(entry.metadata).toMatchObject({ executionId: doc.executionId, taskRunId: doc.taskRunId, flowId: doc.flowId, thread: doc.thread, attemptNumber: String(doc.attemptNumber) });
        expect(entry.metadata).not.toHaveProperty('namespace');
        expect(entry.metadata).not.toHaveProperty('level');
      }
    } finally {
      await server.stop();
    }
  });

  it('a three-day backfill on two workers, shards running side by side, loses nothing to the out-of-order window', async () => {
    // A one-day window over twelve-hour shards: two shards run at once, as far apart as Loki allows.
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a', outOfOrderWindowMs: 86_400_000 }).start();
    try {
      const { file } = config(server, { outOfOrderWindow: 'P1D' });
      const r = await runCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '5' } });
      expect(r.code).toBe(0);
      expect(server.refusedTooFarBehind).toBe(0);
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('the window is what protects it: told Loki allows 30 days, two workers push entries Loki refuses as too far behind', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a', outOfOrderWindowMs: 3_600_000 }).start();
    try {
      const { dir, file } = config(server, { outOfOrderWindow: 'P30D' }, { rowsPerShard: 1000 });
      const r = await runCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
      expect(r.code).toBe(3);
      expect(server.refusedTooFarBehind).toBeGreaterThan(0);
      const dead = fs.readdirSync(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l) as { key: string; reason: string });
      expect(dead.length).toBeGreaterThan(0);
      expect(dead[0]!.reason).toMatch(/^Loki refused the entry: entry with timestamp .* ignored, reason: 'entry too far behind/);
      // Every row is in Loki or in a dead letter: refused, never silently lost.
      const c = compareKeys(source.keys(), [...keysOf(server), ...dead.map((d) => d.key)]);
      expect(c.missing).toEqual([]);
    } finally {
      await server.stop();
    }
  });

  it('pushes JSON (gzip) with the message as the line when asked, with basic auth', async () => {
    const server = await new LokiServer({ username: '123456', password: TOKEN }).start();
    try {
      const { file } = config(server, { protocol: 'json', lineFormat: 'message', tenantId: null, bearerToken: null, basicAuth: { username: '123456', password: "{{ secret('LOKI_TOKEN') }}" }, labels: { job: 'kestra', app: 'logship', ns: '{namespace}' } });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectExactlyOnce(server);
      expect(pushes(server).every((q) => q.headers['content-type'] === 'application/json' && q.headers['content-encoding'] === 'gzip')).toBe(true);
      for (const { stream, entry } of server.entries().slice(0, 500)) {
        const doc = JSON.parse(source.get(entry.metadata.logship_key!)!) as Record<string, unknown>;
        expect(stream).toBe(`{app="logship", job="kestra", ns=${JSON.stringify(doc.namespace)}}`);
        expect(entry.line).toBe(doc.message);
        expect(entry.metadata.level).toBe(doc.level);
      }
    } finally {
      await server.stop();
    }
  });

  it('retries 429 with Retry-After, a 500, a reset and a partial refusal, and loses nothing', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    const victims = new Set([...source.keys()].filter((_, i) => i % 97 === 0));
    server.refuseOnce = (key) => victims.has(key);
    server.failNext([
      { status: 429, headers: { 'retry-after': '0' }, body: 'Ingestion rate limit exceeded for user team-a (limit: 4194304 bytes/sec) while attempting to ingest \'200\' lines totaling \'40000\' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n' },
      { status: 500, body: 'rpc error: code = Unavailable desc = transport is closing\n' },
      { reset: true },
    ], (q) => q.path === '/loki/api/v1/push' && q.body.length > 100);
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      server.assertFaultsDelivered();
      expectExactlyOnce(server);
      // The accepted part of a partly refused push was resent and dropped by Loki as identical.
      expect(server.droppedDuplicates).toBeGreaterThan(0);
    } finally {
      await server.stop();
    }
  });

  it('dead-letters a line over maxLineSize, counts it and exits 3', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    const victim = [...source.keys()][777]!;
    try {
      await client.query("UPDATE logs SET value = jsonb_set(value, '{message}', to_jsonb(repeat('x', 3000))) WHERE key = $1", [victim]);
      const { dir, file } = config(server, { maxLineSize: '2KiB' });
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'report.json')], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/documents were dead-lettered: 1 by 'loki'/);
      const c = compareKeys(source.keys(), keysOf(server));
      expect(c.missing).toEqual([victim]);
      const files = fs.readdirSync(path.join(dir, 'dead'));
      const dead = files.flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n')).filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ exporter: 'loki', key: victim, reason: expect.stringMatching(/^line of \d+ bytes is over Loki's max_line_size \(2048 bytes\)$/) });
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).exporters.loki.deadLettered).toBe(1);
    } finally {
      await client.query("UPDATE logs SET value = $2::jsonb WHERE key = $1", [victim, source.get(victim)]);
      await server.stop();
    }
  });

  it('after kill -9 mid-run a rerun misses nothing; resent entries stay within workers × concurrency × chunk and Loki drops them as identical', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const chunk = 100;
      const concurrency = 2;
      const workers = 2;
      const { file } = config(server, { chunk, concurrency }, { workers, rowsPerShard: 1500, source: { url, fetchSize: 100 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '30' } }), 'half the rows in Loki', () => server.received >= 3000);
      const before = server.received;
      expect(before).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env });
      expect(rerun.code).toBe(0);
      const resent = server.received - source.size;
      console.log(`loki kill -9: ${resent} entries resent after the rerun (bound ${workers * concurrency * chunk}), ${server.droppedDuplicates} dropped by Loki as identical`);
      expect(resent).toBeLessThanOrEqual(workers * concurrency * chunk);
      expect(server.droppedDuplicates).toBe(resent);
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('a wrong token is one line naming the exporter, exit 1, and the offset stays', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env: { LOKI_TOKEN: 'wrong-token-1234' } });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: loki exporter 'loki' (${server.url}): HTTP 401 (authentication failed: check basicAuth, bearerToken or tenantId): invalid token`);
      expect(r.stderr).not.toContain('wrong-token-1234');
      expect(server.entries()).toHaveLength(0);
      expect(await offsetOf(file)).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it('an unreachable host is retried, then fails with one line naming the exporter, exit 1, offset unmoved', async () => {
    const dir = tempDir('loki-down');
    // Port 2: nothing listens there, and unlike a port freed by stopping a server, no other test's
    // server can be given it (ephemeral ports start at 32768). Port 1, as the Google test uses, is
    // on fetch's list of bad ports, which Loki's client refuses to dial.
    const port = '2';
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P4D', workers: 1, offsetKey: 'loki-down', shardAttempts: 1,
      logExporters: [{ id: 'loki', type: 'loki', url: `http://127.0.0.1:${port}`, maxAttempts: 3, minBackoff: 'PT0.01S', maxBackoff: 'PT0.02S' }],
    });
    const r = await runCli(['run', '--config', file]);
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^logship: shard 0 \\(.*\\): loki exporter 'loki' \\(http://127\\.0\\.0\\.1:${port}\\): ECONNREFUSED; gave up after 3 attempts; the offset stays`));
    expect(await offsetOf(file)).toBeNull();
  });
});

describe('loki exporter: configuration errors', () => {
  const base = { id: 'l', type: 'loki', url: 'http://127.0.0.1:3100' };
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ source: { url: 'postgres://x/y' }, logExporters: [{ ...base, ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }

  it('requires url', () => expect(errorOf({ url: undefined })).toBe('logExporters[0].url: is required'));
  it('refuses a url that is not http(s)', () => expect(errorOf({ url: 'loki:3100' })).toBe('logExporters[0].url: must be an http:// or https:// URL (got "loki:3100")'));
  it('refuses labels that are not a mapping', () => expect(errorOf({ labels: ['namespace'] })).toBe('logExporters[0].labels: must be a mapping of label names to values or {field} (got a list)'));
  it('refuses empty labels', () => expect(errorOf({ labels: {} })).toBe('logExporters[0].labels: must name at least one label (Loki refuses a stream without labels)'));
  it('refuses more labels than Loki accepts', () => {
    const labels = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`l${i}`, 'x']));
    expect(errorOf({ labels })).toBe('logExporters[0].labels: has 16 labels; Loki accepts at most 15 per stream');
  });
  it('refuses an invalid label name', () => expect(errorOf({ labels: { 'kestra-ns': '{namespace}' } })).toBe('logExporters[0].labels.kestra-ns: is not a valid Loki label name (letters, digits and _, not starting with a digit or __)'));
  it('refuses a label value that is not a string', () => expect(errorOf({ labels: { job: 3 } })).toBe('logExporters[0].labels.job: must be a non-empty string: a fixed value or {field} (got 3)'));
  it('refuses a label value mixing text and a field', () => expect(errorOf({ labels: { ns: 'ns-{namespace}' } })).toBe('logExporters[0].labels.ns: must be a fixed value or exactly one {field} (got "ns-{namespace}")'));
  it('refuses a high-cardinality field as a label', () => expect(errorOf({ labels: { job: 'kestra', exec: '{executionId}' } })).toBe('logExporters[0].labels.exec: {executionId} has a value per execution or row: as a label it would make a stream per value; it is sent as structured metadata instead'));
  it('refuses basicAuth and bearerToken together', () => expect(errorOf({ basicAuth: { username: 'u', password: 'p' }, bearerToken: 't' })).toBe('logExporters[0].bearerToken: choose basicAuth or bearerToken, not both'));
  it('refuses basicAuth without a password', () => expect(errorOf({ basicAuth: { username: 'u' } })).toBe('logExporters[0].basicAuth.password: is required'));
  it('refuses compression with protobuf', () => expect(errorOf({ compression: 'none' })).toBe('logExporters[0].compression: applies to protocol: json only (Loki takes protobuf pushes snappy-compressed, always)'));
  it('refuses an unknown protocol', () => expect(errorOf({ protocol: 'grpc' })).toBe('logExporters[0].protocol: must be one of protobuf, json (got "grpc")'));
  it('refuses an unknown lineFormat', () => expect(errorOf({ lineFormat: 'logfmt' })).toBe('logExporters[0].lineFormat: must be one of json, message (got "logfmt")'));
  it('refuses a zero outOfOrderWindow', () => expect(errorOf({ outOfOrderWindow: 'PT0S' })).toBe('logExporters[0].outOfOrderWindow: must be a positive duration such as PT1H'));
  it('refuses a keyAttribute Loki cannot carry as structured metadata', () => expect(errorOf({ keyAttribute: 'row-key' })).toBe('logExporters[0].keyAttribute: must be a valid Loki structured-metadata name (letters, digits and _)'));
  it('refuses a chunk of 0', () => expect(errorOf({ chunk: 0 })).toBe('logExporters[0].chunk: must be an integer from 1 to 100000 (got 0)'));
});
