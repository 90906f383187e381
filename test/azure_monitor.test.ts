import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { PermanentExportError } from '../src/core/errors.js';
import { tempDir } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows, failureOf } from './helpers/in_process.js';
import { AzureMonitorServer, makeCertificate } from './helpers/platforms/azure_monitor_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';
import { trustInThisProcess } from './helpers/trust.js';

/**
 * The Logs Ingestion API and Entra ID as the official SDKs meet them (tokens, DCR streams, the SDK's
 * own cut into calls), in process against the HTTPS fake. The delivery contract (faults, Retry-After,
 * a wrong secret, an unreachable endpoint, a crash) is test/contract's; exit codes, the offset and
 * kill -9 are test/delivery_e2e.test.ts's.
 */

const RULE_ID = 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf';
const STREAM = 'kestraLogs';
const principal = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '3f4a1c2e-9b7d-4e21-8a55-0c6d2b9e7f10', clientSecret: 'right-client-secret-1' };

let server: AzureMonitorServer;
let rows: TestRow[];

beforeAll(async () => {
  const cert = makeCertificate(tempDir('azmon-tls'));
  trustInThisProcess(cert.cert);
  server = await new AzureMonitorServer(cert, principal, RULE_ID, STREAM).start();
  rows = kestraRows(3000);
});
afterAll(() => server?.stop());
afterEach(() => {
  server.assertFaultsDelivered();
  server.rows.length = 0;
});

function config(extra: Record<string, unknown> = {}) {
  const deadLetter = path.join(tempDir('azmon'), 'dead');
  return {
    deadLetter,
    config: exporterConfig({
      id: 'azureMonitor', type: 'io.kestra.plugin.ee.azure.monitor.LogExporter', endpoint: server.url, authorityHost: server.url, ...principal,
      ruleId: RULE_ID, streamName: STREAM, chunk: 200, concurrency: 2, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', deadLetter, ...extra,
    }),
  };
}

const ingest = (q: { path: string }) => q.path.startsWith('/dataCollectionRules/');

describe('azure-monitor exporter', () => {
  it('uploads every row once as DCR stream rows: TimeGenerated to the µs, the Kestra columns, the row key, SeverityLevel', async () => {
    await exportRows(config().config, rows);
    expect(compareKeys(rows.map((r) => r.key), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const byKey = new Map(rows.map((r) => [r.key, r.doc]));
    for (const row of server.rows) {
      const doc = byKey.get(row.logship_key as string)!;
      expect(row.TimeGenerated).toBe(doc.timestamp);
      for (const [k, v] of Object.entries(doc)) expect(row[k]).toEqual(v);
      expect(row.SeverityLevel).toBe({ TRACE: 0, DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 }[doc.level as string]);
    }
    // The real credential class asked the local Entra ID for a client-credentials token for the monitor audience.
    expect(server.tokenRequests.at(-1)?.get('grant_type')).toBe('client_credentials');
    expect(server.tokenRequests.at(-1)?.get('scope')).toContain('https://monitor.azure.com/.default');
    expect(server.requests.filter(ingest).every((q) => q.headers['content-encoding'] === 'gzip')).toBe(true);
  });

  it('resends only the rows of the failed call when the SDK cut a request into several calls', async () => {
    const calls = server.requests.length;
    let call = 0;
    server.failNext([{ status: 503, body: JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'busy' } }) }], (q) => ingest(q) && ++call === 2);
    await exportRows(config({ chunk: 1000, maxRequestBytes: '4MB', concurrency: 1 }).config, rows);
    server.assertFaultsDelivered();
    expect(compareKeys(rows.map((r) => r.key), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const sent = server.requests.slice(calls).filter(ingest);
    expect(sent.every((q) => q.body.length < 1_000_000)).toBe(true);
    expect(server.callSizes.length).toBeGreaterThan(3);
    // The resend carried exactly the failed call's rows: the same bytes, once more.
    const failed = sent[1]!;
    expect(sent.filter((q) => q.body.equals(failed.body))).toHaveLength(2);
  });

  it('an unreachable Entra ID is retried, then fails naming the exporter and the authority, nothing sent', async () => {
    const before = server.requests.length;
    const failure = await failureOf(exportRows(config({ authorityHost: 'https://127.0.0.1:2', maxAttempts: 2 }).config, rows.slice(0, 10)));
    expect(failure).not.toBeInstanceOf(PermanentExportError);
    expect(failure.message).toMatch(new RegExp(`^azure-monitor exporter 'azureMonitor' \\(https://127\\.0\\.0\\.1:\\d+\\): cannot get a token from https://127\\.0\\.0\\.1:2 for clientId ${principal.clientId} in tenant ${principal.tenantId}: CredentialUnavailableError: endpoints_resolution_error: .+; gave up after 2 attempts$`));
    expect(server.requests.length).toBe(before);
  });

  it('a stream the DCR does not declare stops the shard at once, naming the exporter and what to check', async () => {
    const failure = await failureOf(exportRows(config({ streamName: 'Custom-Missing' }).config, rows.slice(0, 10)));
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect(failure.message).toMatch(/^azure-monitor exporter 'azureMonitor' \(https:\/\/127\.0\.0\.1:\d+\): upload: HTTP 404 InvalidStream: Stream 'Custom-Missing' is not declared in data collection rule 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf'\. \(check ruleId and streamName against the DCR\)$/);
  });

  it('a 403 from the ingestion API (no role on the DCR) stops the shard, naming the role it needs', async () => {
    server.failNext([{ status: 403, body: JSON.stringify({ error: { code: 'OperationFailed', message: `The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '${RULE_ID}'.` } }) }], ingest);
    const failure = await failureOf(exportRows(config({ concurrency: 1 }).config, rows.slice(0, 10)));
    server.assertFaultsDelivered();
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect(failure.message).toBe(`azure-monitor exporter 'azureMonitor' (${server.url}): upload: HTTP 403 OperationFailed: The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '${RULE_ID}'. (the service principal needs the Monitoring Metrics Publisher role on the DCR)`);
  });

  it('dead-letters the row over maxRequestBytes with its reason, and counts it', async () => {
    const some: TestRow[] = kestraRows(300, { seed: 5 });
    some[123]!.doc.message = 'x'.repeat(5000);
    const { config: c, deadLetter } = config({ maxRequestBytes: '4KB' });
    expect(await exportRows(c, some)).toMatchObject({ rows: 299, deadLettered: 1 });
    expect(compareKeys(some.filter((_, i) => i !== 123).map((r) => r.key), server.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const lines = deadLetterRecords(deadLetter);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ exporter: 'azureMonitor', key: some[123]!.key, reason: expect.stringMatching(/^row is \d+ bytes as JSON, over the 4000 bytes of maxRequestBytes$/) });
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
