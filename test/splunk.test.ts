import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { tsToMicros } from '../src/plan/keyset.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { hecTime } from '../src/sinks/splunk/request_builder.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { SplunkServer } from './helpers/platforms/splunk_server.js';

const TOKEN = 'b7e3c1a2-hec-token-for-tests';
const env = { SPLUNK_TOKEN: TOKEN, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

let url: string;
let client: pg.Client;
/** key -> { document text, timestamp column in µs } */
let source: Map<string, { doc: string; tsMicros: number }>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('splunk'));
  await seedKestraLogs(client, { rows: 1500, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  const r = await client.query<{ key: string; v: string; ts: string }>(`SELECT key, value::text AS v, to_char(timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, { doc: x.v, tsMicros: tsToMicros(x.ts) }]));
});
afterAll(() => client.end());

let n = 0;
function config(server: SplunkServer | string, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('splunk');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `splunk-${++n}`, ...top,
    logExporters: [{
      id: 'splunk', type: 'io.kestra.plugin.ee.splunk.LogExporter', host: typeof server === 'string' ? server : server.url,
      token: "{{ secret('SPLUNK_TOKEN') }}", chunk: 200, concurrency: 3, deadLetter: path.join(dir, 'dead'),
      minBackoff: 'PT0.01S', maxBackoff: 'PT0.2S', ...extra,
    }],
  });
  return { dir, file };
}

function expectExactlyOnce(server: SplunkServer, except: string[] = []): void {
  const expected = [...source.keys()].filter((k) => !except.includes(k));
  const c = compareKeys(expected, server.keys());
  expect(c.missing).toEqual([]);
  expect(c.unexpected).toEqual([]);
  expect(c.duplicates).toBe(0);
}

function deadLetters(dir: string): Record<string, unknown>[] {
  const d = path.join(dir, 'dead');
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d).flatMap((f) => fs.readFileSync(path.join(d, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}

describe('splunk HEC exporter', () => {
  it('delivers every row exactly once as HEC events: exact time, severity, Kestra indexed fields and the row key', async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectExactlyOnce(server);
      for (const e of server.events) {
        const key = String(e.fields!.logship_key);
        const row = source.get(key)!;
        const doc = JSON.parse(row.doc) as Record<string, unknown>;
        // time: the source column's exact microsecond, written as a decimal literal.
        expect(e.raw.startsWith(`{"time":${hecTime(row.tsMicros)},`)).toBe(true);
        expect(e.source).toBe('kestra');
        expect(e.sourcetype).toBeUndefined();
        expect(e.event).toEqual(doc);
        const fields: Record<string, string> = { severity: String(doc.level), logship_key: key };
        for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind']) {
          if (doc[f] !== undefined) fields[f] = String(doc[f]);
        }
        expect(e.fields).toEqual(fields);
      }
      const posts = server.requests.filter((q) => q.path === '/services/collector/event' && q.body.length > 0);
      expect(posts.every((q) => q.headers['content-encoding'] === 'gzip' && q.raw.length < q.body.length)).toBe(true);
      expect(posts.every((q) => q.body.toString('utf8').trim().split('\n').length <= 200)).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('retries HEC busy (503 code 9) with Retry-After, a 500 and a connection reset, and loses nothing', async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const isEvent = (q: { path: string; body: Buffer }) => q.path === '/services/collector/event' && q.body.length > 0;
      server.failNext([
        { status: 503, headers: { 'retry-after': '0' }, body: JSON.stringify({ text: 'Server is busy', code: 9 }) },
        { status: 500, body: JSON.stringify({ text: 'Internal server error', code: 8 }) },
        { reset: true },
        { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ text: 'Server is busy', code: 9 }) },
      ], isEvent);
      const { file } = config(server, { useAck: false, compression: 'none' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      server.assertFaultsDelivered();
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('dead-letters exactly the event HEC cannot parse (code 6, invalid-event-number): the events before it stay, the ones after it are resent, exit 3', async () => {
    const server = await new SplunkServer(TOKEN).start();
    const victim = [...source.keys()][777]!;
    server.poison = (raw) => raw.includes(`"logship_key":"${victim}"`);
    try {
      const { dir, file } = config(server);
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: documents were dead-lettered: 1 by 'splunk' /);
      expectExactlyOnce(server, [victim]);
      const dead = deadLetters(dir);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ exporter: 'splunk', key: victim, status: 400, reason: 'Invalid data format (code 6)' });
      expect((dead[0]!.document as { event: unknown }).event).toEqual(JSON.parse(source.get(victim)!.doc));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.splunk.deadLettered).toBe(1);
      const allowed = config(server, { allowDeadLetter: true });
      expect((await runCli(['run', '--config', allowed.file], { env })).code).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('halves a request HEC refuses as too large (413) and loses nothing', async () => {
    const server = await new SplunkServer(TOKEN, { maxContentLength: 40_000 }).start();
    try {
      const { file } = config(server, { maxBytes: '200KB' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expect(server.requests.some((q) => q.body.length > 40_000)).toBe(true);
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('never sends a request over maxBytes, and dead-letters an event that alone exceeds it', async () => {
    const { url: bigUrl, client: big } = await freshDatabase('splunk_big');
    const server = await new SplunkServer(TOKEN, { maxContentLength: 8192 }).start();
    try {
      await seedKestraLogs(big, { rows: 300, start: isoAgo(3600), spanSeconds: 600 });
      await big.query(`INSERT INTO logs (key, value) VALUES ('huge-row', jsonb_build_object('timestamp', to_char(now() - interval '30 minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'level', 'INFO', 'namespace', 'company.team', 'flowId', 'flow_big', 'message', repeat('x', 9000)))`);
      const { dir, file } = config(server, { maxBytes: 8192 }, { source: { url: bigUrl } });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(3);
      expect(server.requests.filter((q) => q.path === '/services/collector/event').every((q) => q.body.length <= 8192)).toBe(true);
      expect(server.keys()).not.toContain('huge-row');
      expect(server.keys()).toHaveLength(300);
      expect(new Set(server.keys()).size).toBe(300);
      const dead = deadLetters(dir);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ key: 'huge-row' });
      expect(dead[0]!.reason).toMatch(/^event of \d+ bytes exceeds the request limit maxBytes \(8192\)/);
    } finally {
      await server.stop();
      await big.end();
    }
  });

  it('with useAck counts a request only once the indexers acknowledge it, and resends the request they lost', async () => {
    const server = await new SplunkServer(TOKEN, { useAck: true }).start();
    server.loseRequest = (k) => k === 3;
    try {
      const { file } = config(server, { useAck: true, ackPollInterval: 'PT0.02S', ackTimeout: 'PT0.5S' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectExactlyOnce(server);
      expect(server.ackPolls).toBeGreaterThan(0);
      const channels = new Set(server.events.map((e) => e.channel));
      expect([...channels].every((c) => typeof c === 'string' && /^[0-9a-f-]{36}$/.test(c))).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('fails before sending anything, with one line naming the exporter, when useAck is on but the token has acknowledgement disabled', async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const { file } = config(server, { useAck: true, ackPollInterval: 'PT0.02S' });
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: splunk exporter 'splunk' (${server.url}): HTTP 400 ACK is disabled (code 14): useAck is on but the token has indexer acknowledgement disabled`);
      expect(server.eventRequests).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('a kill -9 mid-run, then a rerun: 0 missing, duplicates within workers × concurrency × chunk', async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const { file } = config(server, { chunk: 50, concurrency: 2 }, { source: { url, fetchSize: 100 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '40' } }), '600 events at HEC', () => server.events.length >= 600);
      expect(server.events.length).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env });
      expect(rerun.code).toBe(0);
      expect(rerun.stdout).toContain('(resumed)');
      const c = compareKeys(source.keys(), server.keys());
      expect(c.missing).toEqual([]);
      expect(c.unexpected).toEqual([]);
      expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 50);
      console.log(`splunk kill -9 + rerun: ${c.duplicates} duplicate events (bound ${2 * 2 * 50})`);
    } finally {
      await server.stop();
    }
  });

  it('a wrong token: one line naming the exporter, exit 1, the offset does not move, and the token is not printed', async () => {
    const server = await new SplunkServer(TOKEN).start();
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env: { ...env, SPLUNK_TOKEN: 'wrong-token-0042' } });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: splunk exporter 'splunk' (${server.url}): HTTP 403 Invalid token (code 4): authentication failed: check the token`);
      expect(r.stderr + r.stdout).not.toContain('wrong-token-0042');
      expect(server.events).toHaveLength(0);
      const state = await runCli(['state', '--config', file, '--json'], { env });
      expect(JSON.parse(state.stdout)).toMatchObject({ offset: null, unfinishedRun: null });
    } finally {
      await server.stop();
    }
  });

  it('an unreachable host is retried maxAttempts times, then fails with one line naming the exporter (exit 1)', async () => {
    const { file } = config('http://127.0.0.1:9', { maxAttempts: 3 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: splunk exporter 'splunk' (http://127.0.0.1:9): ECONNREFUSED; gave up after 3 attempts`);
  });

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
