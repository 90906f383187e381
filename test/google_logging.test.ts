import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { GoogleLoggingServer, makeServiceAccount, SEVERITY_NUMBER, type WrittenEntry } from './helpers/platforms/google_logging_server.js';

const FLOW = fileURLToPath(new URL('../fixtures/kestra-flows/docs-examples/05-google-operational-suite.yaml', import.meta.url));
const PROJECT = 'my-gcp-project';

let url: string;
let client: pg.Client;
let source: Map<string, string>;
const account = makeServiceAccount(PROJECT);
// The library must never look for the cloud metadata server from a test.
const baseEnv = { METADATA_SERVER_DETECTION: 'none', GCP_SA: account.json };

beforeAll(async () => {
  ({ url, client } = await freshDatabase('google_logging'));
  await seedKestraLogs(client, { rows: 2500, start: isoAgo(20 * 3600), spanSeconds: 19 * 3600 });
  const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
  source = new Map(r.rows.map((x) => [x.key, x.v]));
});
afterAll(() => client.end());

async function startServer(): Promise<GoogleLoggingServer> {
  return new GoogleLoggingServer({ projectId: PROJECT, clientEmail: account.clientEmail, publicKey: account.publicKey }).start();
}

let n = 0;
function config(server: GoogleLoggingServer, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('gcl');
  const file = writeConfig(dir, {
    source: { url, fetchSize: 250 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `gcl-${++n}`, ...top,
    logExporters: [{
      id: 'gcl', type: 'google-logging', projectId: PROJECT, serviceAccount: "{{ secret('GCP_SA') }}", endpoint: server.url,
      chunk: 250, concurrency: 3, deadLetter: path.join(dir, 'dead'), minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
    }],
  });
  return { dir, file };
}

const keysOf = (entries: WrittenEntry[]) => entries.map((e) => e.insertId);
function expectExactlyOnce(server: GoogleLoggingServer, keys: Iterable<string> = source.keys()): void {
  const c = compareKeys(keys, keysOf(server.written));
  expect({ missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates }).toEqual({ missing: 0, unexpected: 0, duplicates: 0 });
}

async function offsetOf(file: string, env: Record<string, string>): Promise<unknown> {
  const r = await runCli(['state', '--config', file, '--json'], { env });
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { offset: unknown }).offset;
}

/** An RFC 3339 time to µs, whatever its number of fraction digits (proto3 JSON trims zeros). */
function micros(ts: string): number {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(ts)!;
  return Date.parse(`${m[1]}Z`) * 1000 + Number(`${m[2] ?? ''}000000`.slice(0, 6));
}

const SEVERITY: Record<string, number> = { TRACE: SEVERITY_NUMBER.DEBUG!, DEBUG: SEVERITY_NUMBER.DEBUG!, INFO: SEVERITY_NUMBER.INFO!, WARN: SEVERITY_NUMBER.WARNING!, ERROR: SEVERITY_NUMBER.ERROR! };

describe('google-logging exporter', () => {
  it("runs Kestra's Google Operational Suite example as written: INFO and above, insertId = row key, exact timestamps, mapped severity, the document as jsonPayload", async () => {
    const server = await startServer();
    const dir = tempDir('gcl-flow');
    const keyFile = path.join(dir, 'sa.json');
    fs.writeFileSync(keyFile, account.json);
    // No key in the flow: Application Default Credentials; no endpoint in the flow: the override.
    const env = { METADATA_SERVER_DETECTION: 'none', LOGSHIP_SOURCE_URL: url, GOOGLE_APPLICATION_CREDENTIALS: keyFile, LOGSHIP_GOOGLE_LOGGING_ENDPOINT: server.url };
    try {
      const plan = await runCli(['plan', '--config', FLOW], { env, cwd: dir });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain(`projects/${PROJECT}/logs/kestra (${server.url}, resource global)`);
      const r = await runCli(['run', '--config', FLOW], { env, cwd: dir });
      expect(r.code).toBe(0);
      const wanted = [...source].filter(([, v]) => ['INFO', 'WARN', 'ERROR'].includes(JSON.parse(v).level as string)).map(([k]) => k);
      expectExactlyOnce(server, wanted);
      for (const e of server.written) {
        const doc = JSON.parse(source.get(e.insertId)!) as Record<string, unknown>;
        expect(e.logName).toBe(`projects/${PROJECT}/logs/kestra`);
        expect(e.resource).toEqual({ type: 'global', labels: { project_id: PROJECT } });
        expect(micros(e.timestamp)).toBe(micros(doc.timestamp as string));
        expect(e.severity).toBe(SEVERITY[doc.level as string]);
        expect(e.jsonPayload).toEqual(doc);
        expect(e.labels).toMatchObject({ namespace: doc.namespace, flowId: doc.flowId, executionId: doc.executionId, taskRunId: doc.taskRunId, logship_key: e.insertId });
      }
    } finally {
      await server.stop();
    }
  });

  it('maps TRACE to DEBUG and writes to the configured log and resource with a key given inline', async () => {
    const server = await startServer();
    try {
      const { file } = config(server, { logName: 'logship/test', resource: { type: 'generic_task', labels: { location: 'europe-west1', namespace: 'kestra', job: 'logship', task_id: '1' } }, labels: { env: 'test' } });
      const r = await runCli(['run', '--config', file], { env: baseEnv });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain('PRIVATE KEY');
      expectExactlyOnce(server);
      expect(server.written.every((e) => e.logName === `projects/${PROJECT}/logs/logship%2Ftest` && e.resource.type === 'generic_task' && e.labels.env === 'test')).toBe(true);
      const trace = server.written.filter((e) => JSON.parse(source.get(e.insertId)!).level === 'TRACE');
      expect(trace.length).toBeGreaterThan(0);
      expect(trace.every((e) => e.severity === SEVERITY_NUMBER.DEBUG)).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('retries 429 with Retry-After, 503, a reset and entries failing UNAVAILABLE inside a partial success, and loses nothing', async () => {
    const server = await startServer();
    const flaky = new Set([...source.keys()].filter((_, i) => i % 89 === 0));
    const failedOnce = new Set<string>();
    server.entryError = (e) => (flaky.has(e.insertId) && !failedOnce.has(e.insertId) && failedOnce.add(e.insertId) ? { code: 14, message: 'The service is currently unavailable.' } : undefined);
    server.failNext([
      { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ error: { code: 429, message: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute'", status: 'RESOURCE_EXHAUSTED' } }) },
      { status: 503, body: JSON.stringify({ error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } }) },
      { reset: true },
    ], (q) => q.body.length > 5000);
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env: baseEnv });
      expect(r.code).toBe(0);
      server.assertFaultsDelivered();
      expect(failedOnce.size).toBe(flaky.size);
      expectExactlyOnce(server);
    } finally {
      await server.stop();
    }
  });

  it('dead-letters an entry over 256 KiB before sending and an entry the API reports invalid, counts both and exits 3', async () => {
    const server = await startServer();
    const keys = [...source.keys()];
    const big = keys[100]!;
    const invalid = keys[2000]!;
    server.entryError = (e) => (e.insertId === invalid ? { code: 3, message: 'Log entry has an invalid label value.' } : undefined);
    try {
      await client.query("UPDATE logs SET value = jsonb_set(value, '{message}', to_jsonb(repeat('y', 300 * 1024))) WHERE key = $1", [big]);
      const { dir, file } = config(server);
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'report.json')], { env: baseEnv });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/documents were dead-lettered: 2 by 'gcl'/);
      expect(compareKeys(source.keys(), keysOf(server.written)).missing.sort()).toEqual([big, invalid].sort());
      const dead = fs.readdirSync(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n')).filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(dead.find((d) => d.key === big)).toMatchObject({ exporter: 'gcl', reason: expect.stringMatching(/^entry of about \d+ bytes is over Cloud Logging's LogEntry limit \(262144 bytes\)$/) });
      expect(dead.find((d) => d.key === invalid)).toMatchObject({ exporter: 'gcl', insertId: invalid, status: 400, reason: 'Log entry has an invalid label value.', error: { code: 3 } });
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).exporters.gcl.deadLettered).toBe(2);
    } finally {
      await client.query('UPDATE logs SET value = $2::jsonb WHERE key = $1', [big, source.get(big)]);
      await server.stop();
    }
  });

  it('after kill -9 mid-run a rerun misses nothing; resent entries stay within workers × concurrency × chunk and queries show each once', async () => {
    const server = await startServer();
    try {
      const chunk = 100;
      const concurrency = 2;
      const workers = 2;
      const { file } = config(server, { chunk, concurrency }, { workers, rowsPerShard: 1000, source: { url, fetchSize: 100 } });
      await killWhen(startCli(['run', '--config', file], { env: { ...baseEnv, LOGSHIP_TEST_BATCH_DELAY_MS: '60' } }), 'half the rows written', () => server.written.length >= 1250);
      expect(server.written.length).toBeLessThan(source.size);
      const rerun = await runCli(['run', '--config', file], { env: baseEnv });
      expect(rerun.code).toBe(0);
      const c = compareKeys(source.keys(), keysOf(server.written));
      console.log(`google-logging kill -9: ${c.duplicates} entries resent after the rerun (bound ${workers * concurrency * chunk}); a query shows each once`);
      expect(c.missing).toEqual([]);
      expect(c.duplicates).toBeLessThanOrEqual(workers * concurrency * chunk);
      expect(compareKeys(source.keys(), keysOf(server.visible()))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    } finally {
      await server.stop();
    }
  });

  it('a key the service does not know is one line naming the exporter, exit 1, and the offset stays', async () => {
    const server = await startServer();
    const stranger = makeServiceAccount(PROJECT);
    const env = { ...baseEnv, GCP_SA: stranger.json };
    try {
      const { file } = config(server);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: google-logging exporter 'gcl' (projects/${PROJECT}/logs/kestra): HTTP 401 (authentication failed: check the API key or token) UNAUTHENTICATED: Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.`);
      expect(r.stderr).not.toContain('PRIVATE KEY');
      expect(server.written).toHaveLength(0);
      expect(await offsetOf(file, env)).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it('an unreachable endpoint is retried, then fails with one line naming the exporter, exit 1, offset unmoved', async () => {
    // Port 1: nothing listens there, and no other test's server can be given it (a port freed by
    // stopping a server could be, and that test would then receive this one's requests).
    const endpoint = 'http://127.0.0.1:1';
    const dir = tempDir('gcl-down');
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 1, offsetKey: 'gcl-down', shardAttempts: 1,
      logExporters: [{ id: 'gcl', type: 'io.kestra.plugin.ee.gcp.LogExporter', projectId: PROJECT, serviceAccount: "{{ secret('GCP_SA') }}", endpoint, maxAttempts: 3, minBackoff: 'PT0.01S', maxBackoff: 'PT0.02S' }],
    });
    const r = await runCli(['run', '--config', file], { env: baseEnv });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard 0 \\(.*\\): google-logging exporter 'gcl' \\(projects/${PROJECT}/logs/kestra\\): ECONNREFUSED; gave up after 3 attempts; the offset stays`));
    expect(await offsetOf(file, baseEnv)).toBeNull();
  });
});

describe('google-logging exporter: configuration errors', () => {
  const base = { id: 'g', type: 'io.kestra.plugin.ee.gcp.operationalsuite.LogExporter', projectId: PROJECT };
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ source: { url: 'postgres://x/y' }, logExporters: [{ ...base, ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }

  it('requires projectId', () => expect(errorOf({ projectId: undefined })).toBe('logExporters[0].projectId: is required'));
  it('refuses a malformed projectId', () => expect(errorOf({ projectId: 'My Project' })).toBe('logExporters[0].projectId: is not a Google Cloud project id (got "My Project")'));
  it('refuses a serviceAccount that is not JSON', () => expect(errorOf({ serviceAccount: '/etc/sa.json' })).toBe("logExporters[0].serviceAccount: must be a service account key in JSON (the file's content, not its path)"));
  it('refuses a serviceAccount without a private key', () => expect(errorOf({ serviceAccount: '{"type":"service_account"}' })).toBe('logExporters[0].serviceAccount: must be a service account key with client_email and private_key'));
  it('refuses an invalid logName', () => expect(errorOf({ logName: 'kestra logs' })).toBe('logExporters[0].logName: may hold only letters, digits, /, _, - and . (at most 512 characters)'));
  it('refuses a scope that is not a string', () => expect(errorOf({ scopes: [42] })).toBe('logExporters[0].scopes[0]: must be an OAuth scope URL (got 42)'));
  it('refuses a resource that is neither a type nor a mapping', () => expect(errorOf({ resource: ['global'] })).toBe('logExporters[0].resource: must be a monitored-resource type or {type, labels} (got a list)'));
  it('requires resource.type in a resource mapping', () => expect(errorOf({ resource: { labels: { a: 'b' } } })).toBe('logExporters[0].resource.type: is required'));
  it('says impersonatedServiceAccount is not supported yet', () => expect(errorOf({ impersonatedServiceAccount: 'sa@p.iam.gserviceaccount.com' })).toBe("logExporters[0].impersonatedServiceAccount: is not supported yet: give the service account's own key in serviceAccount, or run with its Application Default Credentials"));
  it('refuses an endpoint that is not a URL', () => expect(errorOf({ endpoint: '127.0.0.1:8085' })).toBe('logExporters[0].endpoint: must be an http:// or https:// URL (got "127.0.0.1:8085")'));
});
