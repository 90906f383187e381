import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { PermanentExportError } from '../src/core/errors.js';
import { hecTime } from '../src/sinks/splunk/request_builder.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { withDeadLetter, withStarted } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows, failureOf } from './helpers/in_process.js';
import { SplunkServer } from './helpers/platforms/splunk_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * HEC's wire format, answers and indexer acknowledgement, in process against the HEC fake. The
 * delivery contract (faults, Retry-After, a wrong token, an unreachable host, a crash) is
 * test/contract's; exit codes, the offset and kill -9 are test/delivery_e2e.test.ts's.
 */

const TOKEN = 'b7e3c1a2-hec-token-for-tests';
const env = { SPLUNK_TOKEN: TOKEN, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

function withServer(options: ConstructorParameters<typeof SplunkServer>[1], body: (server: SplunkServer) => Promise<void>): Promise<void> {
  return withStarted(new SplunkServer(TOKEN, options).start(), body);
}

function config(server: SplunkServer, extra: Record<string, unknown> = {}) {
  return withDeadLetter('splunk', {
      id: 'splunk', type: 'io.kestra.plugin.ee.splunk.LogExporter', host: server.url, token: TOKEN, chunk: 200, concurrency: 3,
      minBackoff: 'PT0.01S', maxBackoff: 'PT0.2S', ...extra,
  });
}

function expectExactlyOnce(server: SplunkServer, rows: TestRow[], except: string[] = []): void {
  expect(compareKeys(rows.map((r) => r.key).filter((k) => !except.includes(k)), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
}

describe('splunk HEC exporter', () => {
  it('delivers every row exactly once as HEC events: exact time, severity, Kestra indexed fields and the row key', async () => {
    await withServer({}, async (server) => {
      const rows = kestraRows(1500);
      await exportRows(config(server).config, rows);
      expectExactlyOnce(server, rows);
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const e of server.events) {
        const key = String(e.fields!.logship_key);
        const row = byKey.get(key)!;
        // time: the source column's exact microsecond, written as a decimal literal.
        expect(e.raw.startsWith(`{"time":${hecTime(row.tsMicros)},`)).toBe(true);
        expect(e.source).toBe('kestra');
        expect(e.sourcetype).toBeUndefined();
        expect(e.event).toEqual(row.doc);
        const fields: Record<string, string> = { severity: String(row.doc.level), logship_key: key };
        for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind']) {
          if (row.doc[f] !== undefined) fields[f] = String(row.doc[f]);
        }
        expect(e.fields).toEqual(fields);
      }
      const posts = server.requests.filter((q) => q.path === '/services/collector/event' && q.body.length > 0);
      expect(posts.every((q) => q.headers['content-encoding'] === 'gzip' && q.raw.length < q.body.length)).toBe(true);
      expect(posts.every((q) => q.body.toString('utf8').trim().split('\n').length <= 200)).toBe(true);
    });
  });

  it('dead-letters exactly the event HEC cannot parse (code 6, invalid-event-number): the events before it stay, the ones after it are resent', async () => {
    await withServer({}, async (server) => {
      const rows = kestraRows(1500);
      const victim = rows[777]!;
      server.poison = (raw) => raw.includes(`"logship_key":"${victim.key}"`);
      const { config: c, deadLetter } = config(server);
      expect(await exportRows(c, rows)).toMatchObject({ rows: 1499, deadLettered: 1 });
      expectExactlyOnce(server, rows, [victim.key]);
      const dead = deadLetterRecords(deadLetter);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ exporter: 'splunk', key: victim.key, status: 400, reason: 'Invalid data format (code 6)' });
      expect((dead[0]!.document as { event: unknown }).event).toEqual(victim.doc);
    });
  });

  it('halves a request HEC refuses as too large (413) and loses nothing', async () => {
    await withServer({ maxContentLength: 40_000 }, async (server) => {
      const rows = kestraRows(1500);
      await exportRows(config(server, { maxBytes: '200KB' }).config, rows);
      expect(server.requests.some((q) => q.body.length > 40_000)).toBe(true);
      expectExactlyOnce(server, rows);
    });
  });

  it('never sends a request over maxBytes, and dead-letters an event that alone exceeds it', async () => {
    await withServer({ maxContentLength: 8192 }, async (server) => {
      const rows: TestRow[] = kestraRows(301);
      rows[150]!.doc.message = 'x'.repeat(9000);
      const { config: c, deadLetter } = config(server, { maxBytes: 8192 });
      expect(await exportRows(c, rows)).toMatchObject({ rows: 300, deadLettered: 1 });
      expect(server.requests.filter((q) => q.path === '/services/collector/event').every((q) => q.body.length <= 8192)).toBe(true);
      expectExactlyOnce(server, rows, [rows[150]!.key]);
      const dead = deadLetterRecords(deadLetter);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ key: rows[150]!.key });
      expect(dead[0]!.reason).toMatch(/^event of \d+ bytes exceeds the request limit maxBytes \(8192\)/);
    });
  });

  it('with useAck counts a request only once the indexers acknowledge it, and resends the request they lost', async () => {
    await withServer({ useAck: true }, async (server) => {
      server.loseRequest = (k) => k === 3;
      const rows = kestraRows(1500);
      await exportRows(config(server, { useAck: true, ackPollInterval: 'PT0.02S', ackTimeout: 'PT0.5S' }).config, rows);
      expectExactlyOnce(server, rows);
      expect(server.ackPolls).toBeGreaterThan(0);
      const channels = new Set(server.events.map((e) => e.channel));
      expect([...channels].every((ch) => typeof ch === 'string' && /^[0-9a-f-]{36}$/.test(ch))).toBe(true);
    });
  });

  it('fails before sending anything, permanently, naming the exporter, when useAck is on but the token has acknowledgement disabled', async () => {
    await withServer({}, async (server) => {
      const failure = await failureOf(exportRows(config(server, { useAck: true, ackPollInterval: 'PT0.02S' }).config, kestraRows(10)));
      expect(failure).toBeInstanceOf(PermanentExportError);
      expect(failure.message).toBe(`splunk exporter 'splunk' (${server.url}): HTTP 400 ACK is disabled (code 14): useAck is on but the token has indexer acknowledgement disabled`);
      expect(server.eventRequests).toBe(0);
    });
  });
});

describe('splunk HEC exporter: the Kestra flow', () => {
  let url: string;
  let client: pg.Client;
  beforeAll(async () => {
    ({ url, client } = await freshDatabase('splunk'));
    await seedKestraLogs(client, { rows: 1500, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  });
  afterAll(() => client.end());

  it("runs Kestra's Splunk flow (corrected YAML) against the local HEC, and names the YAML defect of the flow as published", async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const published = await runCli(['plan', '--config', 'fixtures/kestra-flows/docs-examples/11-splunk-invalid-yaml-as-published.yaml'], { env: { ...env, LOGSHIP_SOURCE_URL: url } });
      expect(published.code).toBe(2);
      expect(published.stderr.trim().split('\n')).toEqual(['logship: fixtures/kestra-flows/docs-examples/11-splunk-invalid-yaml-as-published.yaml: not valid YAML (line 8, column 1): All mapping items must start at the same column; hint: `tasks:` is indented under `triggers:`; move it to the top level of the flow']);
      const dir = tempDir('splunk-flow');
      const flow = fs.readFileSync('fixtures/kestra-flows/11-splunk-corrected.yaml', 'utf8').replace('https://example.splunkcloud.com:8088', server.url);
      const file = writeConfig(dir, flow, 'flow.yaml');
      const flowEnv = { ...env, SPLUNK_API_KEY: TOKEN, LOGSHIP_SOURCE_URL: url };
      const plan = await runCli(['plan', '--config', file], { env: flowEnv, cwd: dir });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain(`HEC ${server.url}/services/collector/event`);
      const r = await runCli(['run', '--config', file], { env: flowEnv, cwd: dir });
      expect(r.code).toBe(0);
      const info = (await client.query<{ key: string }>(`SELECT key FROM logs WHERE value->>'level' IN ('INFO', 'WARN', 'ERROR')`)).rows.map((x) => x.key);
      const c = compareKeys(info, server.keys());
      expect(c).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    } finally {
      await server.stop();
    }
  });
});

describe('splunk HEC exporter: configuration errors', () => {
  const errorOf = (extra: Record<string, unknown>): string => {
    const text = YAML.stringify({ logExporters: [{ id: 's', type: 'splunk', host: 'https://hec.example.com:8088', token: 't0ken-value', ...extra }] });
    try {
      loadConfigText(text, { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('accepts the Kestra type name and strips a collector path from host', () => {
    const c = loadConfigText(YAML.stringify({ logExporters: [{ id: 's', type: 'io.kestra.plugin.ee.splunk.LogExporter', host: 'https://hec.example.com:8088/services/collector/event', token: 't0ken-value' }] }), { secrets: { env: {}, secretsDir: undefined } });
    expect(c.logExporters[0]).toMatchObject({ type: 'splunk', host: 'https://hec.example.com:8088', source: 'kestra', chunk: 1000, maxBytes: 1_000_000, useAck: false, compression: 'gzip' });
  });
  it('names a missing token', () => expect(errorOf({ token: undefined })).toBe('logExporters[0].token: is required'));
  it('names a host that is not a URL', () => expect(errorOf({ host: 'hec.example.com' })).toBe('logExporters[0].host: must be an http:// or https:// URL (got "hec.example.com")'));
  it('names a channel that is not a GUID', () => expect(errorOf({ channel: 'abc' })).toBe('logExporters[0].channel: must be a GUID such as 0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba (got "abc")'));
  it('names a maxBytes below 1 KiB', () => expect(errorOf({ maxBytes: 100 })).toBe('logExporters[0].maxBytes: must be at least 1KiB (got 100)'));
  it('names an ackTimeout shorter than ackPollInterval', () => expect(errorOf({ ackPollInterval: 'PT10S', ackTimeout: 'PT1S' })).toBe('logExporters[0].ackTimeout: must not be shorter than ackPollInterval'));
  it('names a zero ackPollInterval', () => expect(errorOf({ ackPollInterval: 'PT0S' })).toBe('logExporters[0].ackPollInterval: must be a positive duration such as PT1S'));
  it('names an unknown compression', () => expect(errorOf({ compression: 'zstd' })).toBe('logExporters[0].compression: must be one of gzip, none (got "zstd")'));
  it('names a chunk over the cap', () => expect(errorOf({ chunk: 0 })).toBe('logExporters[0].chunk: must be an integer from 1 to 100000 (got 0)'));
});
