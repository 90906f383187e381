import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { withDeadLetter } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows } from './helpers/in_process.js';
import { kestraRows, type TestRow } from './helpers/rows.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
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

describe('loki exporter: shards side by side (the run\'s bounded lead)', () => {
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

});

/** One exporter config against `server`, in process (the rows come from kestraRows, not the database). */
function inProcess(server: LokiServer, extra: Record<string, unknown> = {}) {
  return withDeadLetter('loki', {
      id: 'loki', type: 'io.kestra.plugin.ee.loki.LogExporter', url: server.url, tenantId: 'team-a', bearerToken: TOKEN,
      chunk: 200, concurrency: 3, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
  });
}

function expectRowsOnce(server: LokiServer, rows: TestRow[], except: string[] = []): void {
  const c = compareKeys(rows.map((r) => r.key).filter((k) => !except.includes(k)), keysOf(server));
  expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
}

describe('loki exporter', () => {
  it('pushes every row once as snappy protobuf: labels job/namespace/level, exact timestamps, the document with its key as the line, other fields as structured metadata', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const rows = kestraRows(1500);
      await exportRows(inProcess(server).config, rows);
      expectRowsOnce(server, rows);
      expect(pushes(server).every((q) => q.headers['content-type'] === 'application/x-protobuf' && q.headers.authorization === `Bearer ${TOKEN}` && q.headers['x-scope-orgid'] === 'team-a')).toBe(true);
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const { stream, entry } of server.entries()) {
        const key = entry.metadata.logship_key!;
        const { doc, tsMicros } = byKey.get(key)!;
        expect(stream).toBe(`{job="kestra", level=${JSON.stringify(doc.level)}, namespace=${JSON.stringify(doc.namespace)}}`);
        expect(entry.ns).toBe(`${tsMicros}000`);
        expect(JSON.parse(entry.line)).toEqual({ logship_key: key, ...doc });
        expect(entry.metadata).toMatchObject({ executionId: doc.executionId, taskRunId: doc.taskRunId, flowId: doc.flowId, thread: doc.thread, attemptNumber: String(doc.attemptNumber) });
        expect(entry.metadata).not.toHaveProperty('namespace');
        expect(entry.metadata).not.toHaveProperty('level');
      }
    } finally {
      await server.stop();
    }
  });

  it('pushes JSON (gzip) with the message as the line when asked, with basic auth', async () => {
    const server = await new LokiServer({ username: '123456', password: TOKEN }).start();
    try {
      const rows = kestraRows(1500);
      const { config: c } = inProcess(server, { protocol: 'json', lineFormat: 'message', tenantId: null, bearerToken: null, basicAuth: { username: '123456', password: TOKEN }, labels: { job: 'kestra', app: 'logship', ns: '{namespace}' } });
      await exportRows(c, rows);
      expectRowsOnce(server, rows);
      expect(pushes(server).every((q) => q.headers['content-type'] === 'application/json' && q.headers['content-encoding'] === 'gzip')).toBe(true);
      const byKey = new Map(rows.map((r) => [r.key, r.doc]));
      for (const { stream, entry } of server.entries().slice(0, 500)) {
        const doc = byKey.get(entry.metadata.logship_key!)!;
        expect(stream).toBe(`{app="logship", job="kestra", ns=${JSON.stringify(doc.namespace)}}`);
        expect(entry.line).toBe(doc.message);
        expect(entry.metadata.level).toBe(doc.level);
      }
    } finally {
      await server.stop();
    }
  });

  it('a push Loki partly refuses is halved down to the refused entries; the accepted part it receives again is dropped as identical', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const rows = kestraRows(1500);
      const victims = new Set(rows.filter((_, i) => i % 97 === 0).map((r) => r.key));
      server.refuseOnce = (key) => victims.has(key);
      await exportRows(inProcess(server).config, rows);
      expectRowsOnce(server, rows);
      expect(server.droppedDuplicates).toBeGreaterThan(0);
    } finally {
      await server.stop();
    }
  });

  it('dead-letters a line over maxLineSize, and counts it', async () => {
    const server = await new LokiServer({ bearerToken: TOKEN, tenantId: 'team-a' }).start();
    try {
      const rows: TestRow[] = kestraRows(1500);
      const victim = rows[777]!.key;
      rows[777]!.doc.message = 'x'.repeat(3000);
      const { config: c, deadLetter } = inProcess(server, { maxLineSize: '2KiB' });
      expect(await exportRows(c, rows)).toMatchObject({ rows: 1499, deadLettered: 1 });
      expectRowsOnce(server, rows, [victim]);
      const dead = deadLetterRecords(deadLetter);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ exporter: 'loki', key: victim, reason: expect.stringMatching(/^line of \d+ bytes is over Loki's max_line_size \(2048 bytes\)$/) });
    } finally {
      await server.stop();
    }
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
