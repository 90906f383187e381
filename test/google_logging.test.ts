import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, tempDir } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { withDeadLetter, withStarted } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows } from './helpers/in_process.js';
import { GoogleLoggingServer, makeServiceAccount, SEVERITY_NUMBER, type WrittenEntry } from './helpers/platforms/google_logging_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * Cloud Logging's entries, limits and insertId dedupe, in process against the entries.write fake
 * (the official client over REST, with a real signed service-account key). The delivery contract
 * (faults, partial UNAVAILABLE entries, Retry-After, an unknown key, an unreachable endpoint, a
 * crash) is test/contract's; exit codes, the offset and kill -9 are test/delivery_e2e.test.ts's.
 */

const FLOW = fileURLToPath(new URL('../fixtures/kestra-flows/docs-examples/05-google-operational-suite.yaml', import.meta.url));
const PROJECT = 'my-gcp-project';
const account = makeServiceAccount(PROJECT);

function withServer(body: (server: GoogleLoggingServer) => Promise<void>): Promise<void> {
  return withStarted(new GoogleLoggingServer({ projectId: PROJECT, clientEmail: account.clientEmail, publicKey: account.publicKey }).start(), body);
}

function config(server: GoogleLoggingServer, extra: Record<string, unknown> = {}) {
  return withDeadLetter('gcl', {
      id: 'gcl', type: 'google-logging', projectId: PROJECT, serviceAccount: account.json, endpoint: server.url,
      chunk: 250, concurrency: 3, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
  });
}

const keysOf = (entries: WrittenEntry[]) => entries.map((e) => e.insertId);

/** An RFC 3339 time to µs, whatever its number of fraction digits (proto3 JSON trims zeros). */
function micros(ts: string): number {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(ts)!;
  return Date.parse(`${m[1]}Z`) * 1000 + Number(`${m[2] ?? ''}000000`.slice(0, 6));
}

const SEVERITY: Record<string, number> = { TRACE: SEVERITY_NUMBER.DEBUG!, DEBUG: SEVERITY_NUMBER.DEBUG!, INFO: SEVERITY_NUMBER.INFO!, WARN: SEVERITY_NUMBER.WARNING!, ERROR: SEVERITY_NUMBER.ERROR! };

describe('google-logging exporter', () => {
  it('maps TRACE to DEBUG and writes to the configured log and resource with a key given inline', async () => {
    await withServer(async (server) => {
      const rows = kestraRows(2500);
      const { config: c } = config(server, { logName: 'logship/test', resource: { type: 'generic_task', labels: { location: 'europe-west1', namespace: 'kestra', job: 'logship', task_id: '1' } }, labels: { env: 'test' } });
      await exportRows(c, rows);
      expect(compareKeys(rows.map((r) => r.key), keysOf(server.written))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
      expect(server.written.every((e) => e.logName === `projects/${PROJECT}/logs/logship%2Ftest` && e.resource.type === 'generic_task' && e.labels.env === 'test')).toBe(true);
      const levels = new Map(rows.map((r) => [r.key, r.doc.level]));
      const trace = server.written.filter((e) => levels.get(e.insertId) === 'TRACE');
      expect(trace.length).toBeGreaterThan(0);
      expect(trace.every((e) => e.severity === SEVERITY_NUMBER.DEBUG)).toBe(true);
    });
  });

  it('dead-letters an entry over 256 KiB before sending and an entry the API reports invalid, and counts both', async () => {
    await withServer(async (server) => {
      const rows: TestRow[] = kestraRows(2500);
      const big = rows[100]!.key;
      const invalid = rows[2000]!.key;
      rows[100]!.doc.message = 'y'.repeat(300 * 1024);
      server.entryError = (e) => (e.insertId === invalid ? { code: 3, message: 'Log entry has an invalid label value.' } : undefined);
      const { config: c, deadLetter } = config(server);
      expect(await exportRows(c, rows)).toMatchObject({ rows: 2498, deadLettered: 2 });
      expect(compareKeys(rows.map((r) => r.key), keysOf(server.written)).missing.sort()).toEqual([big, invalid].sort());
      const dead = deadLetterRecords(deadLetter);
      expect(dead.find((d) => d.key === big)).toMatchObject({ exporter: 'gcl', reason: expect.stringMatching(/^entry of about \d+ bytes is over Cloud Logging's LogEntry limit \(262144 bytes\)$/) });
      expect(dead.find((d) => d.key === invalid)).toMatchObject({ exporter: 'gcl', insertId: invalid, status: 400, reason: 'Log entry has an invalid label value.', error: { code: 3 } });
    });
  });

  it('entries sent again (a rerun after a crash) are stored again, and a query shows each once: insertId and timestamp dedupe', async () => {
    await withServer(async (server) => {
      const rows = kestraRows(500);
      const { config: c } = config(server);
      await exportRows(c, rows);
      await exportRows(c, rows.slice(100, 300));
      expect(compareKeys(rows.map((r) => r.key), keysOf(server.written)).duplicates).toBe(200);
      expect(compareKeys(rows.map((r) => r.key), keysOf(server.visible()))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    });
  });
});

describe('google-logging exporter: the Kestra example', () => {
  let url: string;
  let client: pg.Client;
  let source: Map<string, string>;
  beforeAll(async () => {
    ({ url, client } = await freshDatabase('google_logging'));
    await seedKestraLogs(client, { rows: 2500, start: isoAgo(20 * 3600), spanSeconds: 19 * 3600 });
    const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
    source = new Map(r.rows.map((x) => [x.key, x.v]));
  });
  afterAll(() => client.end());

  it("runs Kestra's Google Operational Suite example as written: INFO and above, insertId = row key, exact timestamps, mapped severity, the document as jsonPayload", async () => {
    const server = await new GoogleLoggingServer({ projectId: PROJECT, clientEmail: account.clientEmail, publicKey: account.publicKey }).start();
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
      expect(compareKeys(wanted, keysOf(server.written))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
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
