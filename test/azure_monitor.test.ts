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
import { AzureMonitorServer, CALL_LIMIT, makeCertificate, type TestCertificate } from './helpers/platforms/azure_monitor_server.js';
import { killWhen } from './helpers/wait.js';

const RULE_ID = 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf';
const STREAM = 'kestraLogs';
const principal = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '3f4a1c2e-9b7d-4e21-8a55-0c6d2b9e7f10', clientSecret: 'right-client-secret-1' };
const secrets = { AZURE_TENANT_ID: principal.tenantId, AZURE_CLIENT_ID: principal.clientId, AZURE_CLIENT_SECRET: principal.clientSecret };

let url: string;
let client: pg.Client;
let sourceKeys: string[];
/** key -> (ts µs text as PostgreSQL has it, document) */
let source: Map<string, { ts: string; doc: Record<string, unknown> }>;
let cert: TestCertificate;
let server: AzureMonitorServer;
let certDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('azmon'));
  await seedKestraLogs(client, { rows: 3000, start: isoAgo(6 * 3600), spanSeconds: 5 * 3600 });
  const r = await client.query<{ key: string; ts: string; v: Record<string, unknown> }>(`SELECT key, to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts, value AS v FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, { ts: x.ts, doc: x.v }]));
  sourceKeys = [...source.keys()];
  certDir = tempDir('azmon-tls');
  cert = makeCertificate(certDir);
  env = { ...secrets, NODE_EXTRA_CA_CERTS: cert.bundleFile };
  server = await new AzureMonitorServer(cert, principal, RULE_ID, STREAM).start();
});
afterAll(async () => {
  await server?.stop();
  await client?.end();
});

let n = 0;
function config(extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('azmon');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `azmon-${++n}`, ...top,
    logExporters: [{
      id: 'azureMonitor', type: 'io.kestra.plugin.ee.azure.monitor.LogExporter', endpoint: server.url, authorityHost: server.url,
      tenantId: "{{ secret('AZURE_TENANT_ID') }}", clientId: "{{ secret('AZURE_CLIENT_ID') }}", clientSecret: "{{ secret('AZURE_CLIENT_SECRET') }}",
      ruleId: RULE_ID, streamName: STREAM, chunk: 200, concurrency: 2, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', deadLetter: path.join(dir, 'dead'), ...extra,
    }],
  });
  return { dir, file };
}

function expectExactlyOnce(keys = sourceKeys): void {
  const c = compareKeys(keys, server.keys());
  expect(c).toEqual({ missing: [], unexpected: [], duplicates: 0 });
}

describe('azure-monitor exporter', () => {
  it('uploads every row once as DCR stream rows: TimeGenerated to the µs, the Kestra columns, the row key, SeverityLevel', async () => {
    server.rows.length = 0;
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    expectExactlyOnce();
    for (const row of server.rows) {
      const s = source.get(row.logship_key as string)!;
      expect(row.TimeGenerated).toBe(s.ts);
      for (const [k, v] of Object.entries(s.doc)) expect(row[k]).toEqual(v);
      expect(row.SeverityLevel).toBe({ TRACE: 0, DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 }[s.doc.level as string]);
    }
    // The real credential class asked the local Entra ID for a client-credentials token for the monitor audience.
    expect(server.tokenRequests.at(-1)?.get('grant_type')).toBe('client_credentials');
    expect(server.tokenRequests.at(-1)?.get('scope')).toContain('https://monitor.azure.com/.default');
    expect(server.requests.filter((q) => q.path.startsWith('/dataCollectionRules/')).every((q) => q.headers['content-encoding'] === 'gzip')).toBe(true);
  });

  it('retries 429 with Retry-After, a 503, a 500 and a dropped connection, halves a request answered 413, and loses nothing', async () => {
    server.rows.length = 0;
    const ingest = (q: { path: string }) => q.path.startsWith('/dataCollectionRules/');
    server.failNext([
      { status: 429, headers: { 'retry-after': '1' }, body: JSON.stringify({ error: { code: 'TooManyRequests', message: 'Rate limit of 12000 requests per minute exceeded.' } }) },
      { status: 503, body: JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' } }) },
      { reset: true },
      { status: 500, body: JSON.stringify({ error: { code: 'InternalServerError', message: 'An internal error occurred.' } }) },
      { status: 413, body: JSON.stringify({ error: { code: 'ContentLengthLimitExceeded', message: 'The request body exceeds the 1 MB limit.' } }) },
    ], ingest);
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    server.assertFaultsDelivered();
    expectExactlyOnce();
  });

  it('resends only the rows of the failed call when the SDK cut a request into several calls', async () => {
    server.rows.length = 0;
    const calls = server.requests.length;
    // 1000 rows of ~450 bytes per request: the SDK cuts each into calls of < 1,000,000 bytes.
    let call = 0;
    server.failNext([{ status: 503, body: JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'busy' } }) }], (q) => q.path.startsWith('/dataCollectionRules/') && ++call === 2);
    const { file } = config({ chunk: 1000, maxRequestBytes: '4MB', concurrency: 1 }, { workers: 1, rowsPerShard: 3000 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    server.assertFaultsDelivered();
    expectExactlyOnce();
    const sent = server.requests.slice(calls).filter((q) => q.path.startsWith('/dataCollectionRules/'));
    expect(sent.every((q) => q.body.length < 1_000_000)).toBe(true);
    expect(server.callSizes.length).toBeGreaterThan(3);
    // The resend carried exactly the failed call's rows: the same bytes, once more.
    const failed = sent[1]!;
    expect(sent.filter((q) => q.body.equals(failed.body))).toHaveLength(2);
  });

  it('a kill -9 mid-run, then a rerun: 0 missing, duplicates within workers × concurrency × chunk', async () => {
    server.rows.length = 0;
    const { file } = config({ chunk: 100, concurrency: 2 }, { workers: 2, source: { url, fetchSize: 100 } });
    await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '20' } }), '1000 rows uploaded', () => server.rows.length >= 1000);
    expect(server.rows.length).toBeLessThan(source.size);
    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    const c = compareKeys(sourceKeys, server.keys());
    expect(c.missing).toEqual([]);
    expect(c.unexpected).toEqual([]);
    expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 100);
    console.log(`azure-monitor kill -9 duplicates: ${c.duplicates} (bound ${2 * 2 * 100})`);
  });

  it('a wrong client secret: one line naming the exporter, exit 1, no secret, the offset unmoved', async () => {
    server.rows.length = 0;
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env: { ...env, AZURE_CLIENT_SECRET: 'wrong-client-secret-2' } });
    expect(r.code).toBe(1);
    // tenantId and clientId came from secrets, so they are redacted too.
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: azure-monitor exporter 'azureMonitor' (${server.url}): cannot get a token from ${server.url} for clientId *** in tenant ***: invalid_client (AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.)`);
    expect(r.stderr + r.stdout).not.toContain('wrong-client-secret-2');
    expect(server.rows).toHaveLength(0);
    // The offset did not move: the same job with the right secret still delivers every row.
    expect((await runCli(['run', '--config', file], { env })).code).toBe(0);
    expectExactlyOnce();
  });

  it('an unreachable Entra ID is retried, then fails with one line naming the exporter (exit 1), nothing sent', async () => {
    const before = server.requests.length;
    const { file } = config({ authorityHost: 'https://127.0.0.1:9', maxAttempts: 2 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: azure-monitor exporter 'azureMonitor' \(https:\/\/127\.0\.0\.1:\d+\): cannot get a token from https:\/\/127\.0\.0\.1:9 for clientId \*\*\* in tenant \*\*\*: CredentialUnavailableError: endpoints_resolution_error: .+; gave up after 2 attempts$/);
    expect(server.requests.length).toBe(before);
  });

  it('a stream the DCR does not declare: one line naming the exporter, exit 1, the offset unmoved', async () => {
    server.rows.length = 0;
    const { file } = config({ streamName: 'Custom-Missing' });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: shard \d+ \(\S+\): azure-monitor exporter 'azureMonitor' \(https:\/\/127\.0\.0\.1:\d+\): upload: HTTP 404 InvalidStream: Stream 'Custom-Missing' is not declared in data collection rule 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf'\. \(check ruleId and streamName against the DCR\); the offset stays at the last fully exported shard and a rerun resumes from there$/);
    const state = await runCli(['state', '--config', file], { env });
    expect(state.stdout).not.toMatch(/offset: \d/);
  });

  it('a 403 from the ingestion API (no role on the DCR) stops the run with one line naming the exporter, exit 1', async () => {
    server.rows.length = 0;
    server.failNext([{ status: 403, body: JSON.stringify({ error: { code: 'OperationFailed', message: `The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '${RULE_ID}'.` } }) }], (q) => q.path.startsWith('/dataCollectionRules/'));
    const { file } = config({}, { workers: 1 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    server.assertFaultsDelivered();
    expect(r.stderr.trim().split('\n').at(-1)).toContain(`azure-monitor exporter 'azureMonitor' (${server.url}): upload: HTTP 403 OperationFailed: The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '${RULE_ID}'. (the service principal needs the Monitoring Metrics Publisher role on the DCR)`);
  });

  it('an unreachable endpoint is retried, then fails with one line naming the exporter (exit 1)', async () => {
    // shardAttempts: 1 — the exporter's own retries are the subject; shard retries would only wait longer.
    const { file } = config({ endpoint: 'https://127.0.0.1:9', maxAttempts: 3 }, { shardAttempts: 1 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: shard \d+ \(\S+\): azure-monitor exporter 'azureMonitor' \(https:\/\/127\.0\.0\.1:9\): upload: connect ECONNREFUSED 127\.0\.0\.1:9; gave up after 3 attempts; the offset stays/);
  });
});

describe('azure-monitor exporter: rows too large for a call', () => {
  it('dead-letters the row over maxRequestBytes with its reason, counts it, and exits 3 unless allowDeadLetter', async () => {
    const db = await freshDatabase('azmon_big');
    try {
      await seedKestraLogs(db.client, { rows: 300, start: isoAgo(3600), spanSeconds: 1800 });
      const victim = (await db.client.query<{ key: string }>(`UPDATE logs SET value = value || jsonb_build_object('message', repeat('x', 5000)) WHERE key = (SELECT key FROM logs ORDER BY key OFFSET 123 LIMIT 1) RETURNING key`)).rows[0]!.key;
      const keys = (await db.client.query<{ key: string }>('SELECT key FROM logs')).rows.map((x) => x.key);
      server.rows.length = 0;
      const { dir, file } = config({ maxRequestBytes: '4KB' }, { source: { url: db.url } });
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/logship: documents were dead-lettered: 1 by 'azureMonitor' \(see .*dead\); set allowDeadLetter: true to accept that\n$/);
      expect(compareKeys(keys.filter((k) => k !== victim), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
      const deadFiles = fs.readdirSync(path.join(dir, 'dead'));
      const lines = deadFiles.flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ exporter: 'azureMonitor', key: victim, reason: expect.stringMatching(/^row is \d+ bytes as JSON, over the 4000 bytes of maxRequestBytes$/) });
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.azureMonitor.deadLettered).toBe(1);

      const allowed = config({ maxRequestBytes: '4KB', allowDeadLetter: true }, { source: { url: db.url } });
      expect((await runCli(['run', '--config', allowed.file], { env })).code).toBe(0);
    } finally {
      await db.client.end();
    }
  });
});

describe('azure-monitor exporter: configuration', () => {
  const base = { id: 'azureMonitor', type: 'azure-monitor', endpoint: 'https://dce-1.westeurope-1.ingest.monitor.azure.com', ruleId: RULE_ID, streamName: 'Custom-KestraLogs', tenantId: 't', clientId: 'c', clientSecret: 's' };
  const load = (exporter: Record<string, unknown>) => loadConfigText(YAML.stringify({ source: { url: 'postgres://127.0.0.1/x' }, logExporters: [exporter] }), { secrets: { env: {}, secretsDir: undefined } });
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      load(exporter);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }
  const without = (key: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key));

  it('accepts the Kestra class names and fills the defaults', () => {
    for (const type of ['io.kestra.plugin.ee.azure.monitor.LogExporter', 'io.kestra.plugin.ee.azure.LogExporter', 'AZURE-MONITOR']) {
      expect(load({ ...base, type }).logExporters[0]).toMatchObject({
        type: 'azure-monitor', authorityHost: 'https://login.microsoftonline.com', audience: 'https://monitor.azure.com', maxRequestBytes: 1_000_000,
        chunk: 1000, concurrency: 4, keyAttribute: 'logship_key', servicePrincipal: { tenantId: 't', clientId: 'c', clientSecret: 's' },
      });
    }
    expect(load({ ...without('tenantId'), clientId: undefined, clientSecret: undefined }).logExporters[0]).toMatchObject({ servicePrincipal: undefined });
  });

  it('names ruleId when it is not a DCR immutable id', () => {
    expect(errorOf({ ...base, ruleId: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Insights/dataCollectionRules/z' })).toBe('logExporters[0].ruleId: must be the data collection rule\'s immutable id, dcr- and 32 hex digits (got "/subscriptions/x/resourceGroups/y/providers/Microsoft.Insights/dataCollectionRules/z")');
  });

  it('names streamName when it is missing', () => {
    expect(errorOf(without('streamName'))).toBe('logExporters[0].streamName: is required');
  });

  it('names endpoint when it is not a URL', () => {
    expect(errorOf({ ...base, endpoint: 'dce-1.westeurope-1.ingest.monitor.azure.com' })).toBe('logExporters[0].endpoint: must be an http:// or https:// URL (got "dce-1.westeurope-1.ingest.monitor.azure.com")');
  });

  it('names authorityHost when it is not a URL', () => {
    expect(errorOf({ ...base, authorityHost: 'login.microsoftonline.us' })).toBe('logExporters[0].authorityHost: must be an http:// or https:// URL (got "login.microsoftonline.us")');
  });

  it('names tenantId, clientId or clientSecret when the service principal is incomplete', () => {
    expect(errorOf(without('tenantId'))).toBe('logExporters[0].tenantId: is required with clientId and clientSecret');
    expect(errorOf(without('clientId'))).toBe('logExporters[0].clientId: is required with tenantId and clientSecret');
    expect(errorOf(without('clientSecret'))).toBe('logExporters[0].clientSecret: is required with tenantId and clientId');
  });

  it('names maxRequestBytes outside 1 KiB to 16 MiB', () => {
    expect(errorOf({ ...base, maxRequestBytes: '32MB' })).toBe(`logExporters[0].maxRequestBytes: must be between 1 KiB and 16 MiB (got 32000000)`);
  });
});
