import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { inject } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { cameFromSecret, redact } from '../src/core/secrets.js';
import { applyUrlMap, urlMapOf } from '../src/config/url_map.js';
import { createKestraAuditSchema, seedKestraAudit, seedKestraLogs } from '../src/demo/seed.js';
import { exportedDocs, normalize, runCli, tempDir } from './helpers/cli.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { startBulkServer, type BulkServer } from './helpers/bulk_server.js';
import { startFakeGcs, startS3, type Running } from './helpers/object_servers.js';
import { AzureMonitorServer, makeCertificate } from './helpers/platforms/azure_monitor_server.js';
import { CloudWatchServer } from './helpers/platforms/cloudwatch_server.js';
import { DatadogIntake } from './helpers/platforms/datadog_server.js';
import { GoogleLoggingServer, makeServiceAccount } from './helpers/platforms/google_logging_server.js';
import { NewRelicLogApi } from './helpers/platforms/newrelic_server.js';
import { OtlpServer } from './helpers/platforms/otlp_server.js';

// The test process's own S3 client need not warn about Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * Every LogShipper and AuditLogShipper example of Kestra's documentation
 * (fixtures/kestra-flows/docs-examples/, byte for byte as published) run by `logship run --config`
 * against local servers. Nothing in a flow is edited: endpoints are reached the way a user would
 * reach theirs without touching the flow, through the official SDKs' own environment variables
 * (AWS_ENDPOINT_URL_<SERVICE>, STORAGE_EMULATOR_HOST, AZURE_AUTHORITY_HOST), logship's
 * LOGSHIP_GOOGLE_LOGGING_ENDPOINT, secrets from the environment, `--var` for {{ vars.region }},
 * and `--url-map FROM=TO` for the URLs a flow spells out (https://elastic.example.com:9200 …).
 */
const FLOWS = fileURLToPath(new URL('../fixtures/kestra-flows/docs-examples/', import.meta.url));
const GCP_PROJECT = 'my-gcp-project';
const RULE_ID = 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf';
const principal = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '3f4a1c2e-9b7d-4e21-8a55-0c6d2b9e7f10', clientSecret: 'examples-client-secret' };
const ES_PASSWORD = 'examples-es-password';
const OTEL_TOKEN = 'examples-otel-token';
const DATADOG_KEY = 'examples-datadog-key';
const NEWRELIC_KEY = 'examples-newrelic-key';
/** s3rver's own account; the CloudWatch server is told to accept it too, so one pair of AWS secrets serves every flow. */
const AWS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

let templateDb: string;
let s3: Running;
let gcs: Awaited<ReturnType<typeof startFakeGcs>>;
let es: BulkServer;
let opensearch: BulkServer;
let cloudwatch: CloudWatchServer;
let google: GoogleLoggingServer;
let azureMonitor: AzureMonitorServer;
let datadog: DatadogIntake;
let newRelic: NewRelicLogApi;
let otlp: OtlpServer;
/** The environment of a user whose secrets and SDK endpoint variables are set once for every flow. */
let env: Record<string, string>;
/** key → document text (jsonb), per selection the examples make. */
let logsInfoUp: Map<string, string>;
let logsInfoUpTeam: Map<string, string>;
let auditFlowExecution: Map<string, string>;

beforeAll(async () => {
  const seeded = await freshDatabase('kestra_examples');
  await createKestraAuditSchema(seeded.client);
  // A few hundred rows inside every example's P1D lookback and outside its 30 s safety lag.
  await seedKestraLogs(seeded.client, { rows: 300, start: isoAgo(2 * 3600), spanSeconds: 2 * 3600 - 120 });
  await seedKestraAudit(seeded.client, { rows: 200, start: isoAgo(2 * 3600), spanSeconds: 2 * 3600 - 120 });
  const select = async (sql: string) => new Map((await seeded.client.query<{ key: string; v: string }>(sql)).rows.map((r) => [r.key, r.v]));
  logsInfoUp = await select(`SELECT key, value::text AS v FROM logs WHERE level IN ('INFO', 'WARN', 'ERROR')`);
  logsInfoUpTeam = await select(`SELECT key, value::text AS v FROM logs WHERE level IN ('INFO', 'WARN', 'ERROR') AND (namespace = 'company.team' OR namespace LIKE 'company.team.%')`);
  auditFlowExecution = await select(`SELECT key, value::text AS v FROM audit_logs WHERE resource IN ('FLOW', 'EXECUTION')`);
  // Each filter must leave something out, or a destination ignoring it would pass.
  expect(logsInfoUpTeam.size).toBeGreaterThan(0);
  expect(logsInfoUpTeam.size).toBeLessThan(logsInfoUp.size);
  expect(logsInfoUp.size).toBeLessThan(300);
  expect(auditFlowExecution.size).toBeGreaterThan(0);
  expect(auditFlowExecution.size).toBeLessThan(200);
  await seeded.client.end();
  templateDb = new URL(seeded.url).pathname.slice(1);

  const dir = tempDir('kestra-examples');
  const cert = makeCertificate(dir);
  const account = makeServiceAccount(GCP_PROJECT);
  const keyFile = path.join(dir, 'gcp-sa.json');
  fs.writeFileSync(keyFile, account.json);
  [s3, gcs, es, opensearch, cloudwatch, google, azureMonitor, datadog, newRelic, otlp] = await Promise.all([
    startS3(['logbucket']),
    startFakeGcs(['my-bucket']),
    startBulkServer({ username: 'kestra_user', password: ES_PASSWORD }),
    startBulkServer(),
    new CloudWatchServer([AWS]).start(),
    new GoogleLoggingServer({ projectId: GCP_PROJECT, clientEmail: account.clientEmail, publicKey: account.publicKey }).start(),
    new AzureMonitorServer(cert, principal, RULE_ID, 'kestraLogs').start(),
    new DatadogIntake(DATADOG_KEY).start(),
    new NewRelicLogApi(NEWRELIC_KEY).start(),
    new OtlpServer({ name: 'Authorization', value: `Bearer ${OTEL_TOKEN}` }).start(),
  ]);
  env = {
    // Secrets, as {{ secret('NAME') }} reads them.
    AWS_ACCESS_KEY_ID: AWS.accessKeyId, AWS_SECRET_KEY_ID: AWS.secretAccessKey,
    AZURE_TENANT_ID: principal.tenantId, AZURE_CLIENT_ID: principal.clientId, AZURE_CLIENT_SECRET: principal.clientSecret,
    ES_PASSWORD, OTEL_TOKEN, DATADOG_API_KEY: DATADOG_KEY, DATADOG_APIK_KEY: DATADOG_KEY, DATADOG_INSTANCE_URL: datadog.url, NEWRELIC_API_KEY: NEWRELIC_KEY,
    // The SDKs' own endpoint and credential variables.
    AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: cloudwatch.url, AWS_ENDPOINT_URL_S3: s3.endpoint,
    STORAGE_EMULATOR_HOST: gcs.endpoint,
    GOOGLE_APPLICATION_CREDENTIALS: keyFile, METADATA_SERVER_DETECTION: 'none', LOGSHIP_GOOGLE_LOGGING_ENDPOINT: google.url,
    AZURE_AUTHORITY_HOST: azureMonitor.url, NODE_EXTRA_CA_CERTS: cert.bundleFile,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
});

afterAll(async () => {
  await Promise.all([s3, gcs, es, opensearch, cloudwatch, google, azureMonitor, datadog, newRelic, otlp].map((s) => s?.stop()));
});

/** Each example runs as a first run against its own copy of the seeded database (they share offsetKeys). */
let copies = 0;
async function databaseCopy(): Promise<string> {
  const base = inject('pgUrl');
  const name = `${templateDb}_copy${++copies}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${templateDb}`);
  } finally {
    await admin.end();
  }
  return base.replace(/\/postgres$/, `/${name}`);
}

/** Clears what every destination holds, so each example is judged on what it alone delivered. */
function clearDestinations(): void {
  gcs.objects.clear();
  es.docs.clear();
  opensearch.docs.clear();
  cloudwatch.groups.clear();
  google.written.length = 0;
  azureMonitor.rows.length = 0;
  datadog.logs.length = 0;
  newRelic.logs.length = 0;
  otlp.records.length = 0;
}

async function runExample(file: string, args: string[] = []): Promise<{ code: number | null; stderr: string; cwd: string }> {
  clearDestinations();
  const cwd = tempDir('kestra-example');
  const r = await runCli(['run', '--config', path.join(FLOWS, file), ...args], { env: { ...env, LOGSHIP_SOURCE_URL: await databaseCopy() }, cwd });
  return { code: r.code, stderr: r.stderr, cwd };
}

/** Exit 0 and no error logged; on failure the assertion shows the errors, not just a code. */
function expectSuccess(r: { code: number | null; stderr: string }): void {
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('logship:') || /"level":(50|60)/.test(l));
  expect({ code: r.code, errors }).toEqual({ code: 0, errors: [] });
}

function expectExactlyOnce(destination: string, expected: Map<string, string>, received: string[]): void {
  const c = compareKeys(expected.keys(), received);
  expect({ destination, received: received.length, missing: c.missing.length, unexpected: c.unexpected.length, duplicates: c.duplicates })
    .toEqual({ destination, received: expected.size, missing: 0, unexpected: 0, duplicates: 0 });
}

/** Documents delivered as files are compared by content (they carry no key); seeded documents are all distinct. */
function expectDocsExactlyOnce(destination: string, expected: Map<string, string>, docs: string[], json: boolean): void {
  const want = [...expected.values()].map((d) => (json ? normalize(d) : d)).sort();
  expect({ destination, docs: docs.sort() }).toEqual({ destination, docs: want });
}

const keyOfMessage = (message: string) => (JSON.parse(message) as { logship_key: string }).logship_key;
const cloudWatchKeys = (stream: string) => cloudwatch.events('kestra', stream).map((e) => keyOfMessage(e.message));
/** The ids (row keys) indexed, all of them in `index`. */
function indexedIds(server: BulkServer, index: string): string[] {
  expect([...server.docs.keys()]).toEqual([index]);
  return [...server.docs.get(index)!.keys()];
}
const jsonArrayDocs = (raw: Buffer) => (JSON.parse(zlib.gunzipSync(raw).toString('utf8')) as unknown[]).map((d) => JSON.stringify(d));

async function s3Docs(bucket: string): Promise<string[]> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: AWS });
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  const docs: string[] = [];
  for (const o of listed.Contents ?? []) {
    expect(o.Key).toMatch(/\.json\.gz$/);
    const body = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
    docs.push(...jsonArrayDocs(Buffer.from(await body.Body!.transformToByteArray())));
  }
  client.destroy();
  return docs;
}

/** `--url-map FROM=TO` for the endpoints the flows spell out. */
const map = (from: string, to: string) => ['--url-map', `${from}=${to}`];
const AZURE_MONITOR = 'https://endpoint-host.ingest.monitor.azure.com';
const ELASTIC = 'https://elastic.example.com:9200';
const NEW_RELIC = 'https://log-api.newrelic.com';
const OTEL_COLLECTOR = 'http://otel-collector:4318';

/** The examples with one platform destination: how each is pointed at its local server, and what it received. */
interface OneDestination { flow: string; how: string; args?: () => string[]; destination: string; received: () => string[] }
const ONE_DESTINATION: OneDestination[] = [
  { flow: '02-datadog.yaml', how: 'basePath and API key from secrets', destination: 'Datadog', received: () => datadog.keys() },
  { flow: '03-aws-cloudwatch.yaml', how: '{{ vars.region }} from --var, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS', args: () => ['--var', 'region=eu-west-3'], destination: 'CloudWatch', received: () => cloudWatchKeys('kestra-log-stream') },
  { flow: '05-google-operational-suite.yaml', how: 'Application Default Credentials, LOGSHIP_GOOGLE_LOGGING_ENDPOINT', destination: 'Google Cloud Logging', received: () => google.written.map((e) => e.insertId) },
  { flow: '07-azure-monitor.yaml', how: 'a token from the local Entra ID (AZURE_AUTHORITY_HOST), the endpoint by --url-map', args: () => map(AZURE_MONITOR, azureMonitor.url), destination: 'Azure Monitor', received: () => azureMonitor.keys() },
  { flow: '09-elasticsearch.yaml', how: 'basic auth from a secret, the host by --url-map', args: () => map(ELASTIC, es.endpoint), destination: 'Elasticsearch', received: () => indexedIds(es, 'kestra-logs') },
  { flow: '10-new-relic.yaml', how: 'the API key from a secret, basePath by --url-map', args: () => map(NEW_RELIC, newRelic.url), destination: 'New Relic', received: () => newRelic.keys() },
  { flow: '12-opensearch.yaml', how: 'http://localhost:9200/ by --url-map', args: () => map('http://localhost:9200', opensearch.endpoint), destination: 'OpenSearch', received: () => indexedIds(opensearch, 'logs') },
  { flow: '13-opentelemetry.yaml', how: 'the bearer token from a secret, the collector by --url-map', args: () => map(OTEL_COLLECTOR, otlp.url), destination: 'an OTLP collector', received: () => otlp.keys() },
];

describe("Kestra's documentation examples, run as published", () => {
  for (const { flow, how, args, destination, received } of ONE_DESTINATION) {
    it(`${flow.slice(0, 2)} ${destination} (${how}): every INFO+ row once`, async () => {
      const r = await runExample(flow, args?.() ?? []);
      expectSuccess(r);
      expectExactlyOnce(destination, logsInfoUp, received());
    });
  }

  it('00 multi-platform: CloudWatch, Google Cloud Logging and Azure Monitor each receive every INFO+ row once', async () => {
    const r = await runExample('00-multi-platform-cloudwatch-google-azuremonitor.yaml', map(AZURE_MONITOR, azureMonitor.url));
    expectSuccess(r);
    expectExactlyOnce('cloudwatch', logsInfoUp, cloudWatchKeys('production'));
    expectExactlyOnce('google logging', logsInfoUp, google.written.map((e) => e.insertId));
    expectExactlyOnce('azure monitor', logsInfoUp, azureMonitor.keys());
  });

  it("01 file, namespace company.team: the namespace's INFO+ rows once in ./logship-out; the flow's S3 Upload task is not logship's", async () => {
    const r = await runExample('01-file-namespace.yaml');
    expectSuccess(r);
    expectDocsExactlyOnce('file', logsInfoUpTeam, exportedDocs(path.join(r.cwd, 'logship-out')), false);
  });

  it("04 S3 ({{ vars.region }} from LOGSHIP_VAR_region, AWS_ENDPOINT_URL_S3): every INFO+ row once in the bucket's JSON files", async () => {
    env.LOGSHIP_VAR_region = 'eu-west-2';
    try {
      const r = await runExample('04-aws-s3.yaml');
      expectSuccess(r);
    } finally {
      delete env.LOGSHIP_VAR_region;
    }
    expectDocsExactlyOnce('s3', logsInfoUp, await s3Docs('logbucket'), true);
  });

  it("06 GCS (STORAGE_EMULATOR_HOST): every INFO+ row once in the bucket's JSON files", async () => {
    const r = await runExample('06-google-cloud-storage.yaml');
    expectSuccess(r);
    const objects = [...gcs.objects.entries()].filter(([name]) => name.startsWith('my-bucket/'));
    expect(objects.length).toBeGreaterThan(0);
    expectDocsExactlyOnce('gcs', logsInfoUp, objects.flatMap(([, o]) => jsonArrayDocs(o.data)), true);
  });

  it("08 Azure Blob Storage: its placeholder tenantId is not one Entra ID accepts, so one line naming the option, exit 2", async () => {
    const r = await runExample('08-azure-blob-storage.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: tasks[0].logExporters[0].tenantId: must be a Microsoft Entra tenant ID, a GUID or a domain such as contoso.onmicrosoft.com (got "tenant_id")\n');
  });

  it("11 Splunk, invalid YAML as published: one line with line and column and the tasks-under-triggers hint, exit 2", async () => {
    const file = path.join(FLOWS, '11-splunk-invalid-yaml-as-published.yaml');
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`logship: ${file}: not valid YAML (line 8, column 1): All mapping items must start at the same column; hint: \`tasks:\` is indented under \`triggers:\`; move it to the top level of the flow\n`);
  });

  it('14 AuditLogShipper to every platform: each of the eight destinations receives every FLOW and EXECUTION entry once', async () => {
    const r = await runExample('14-audit-log-shipper-all-platforms.yaml', [
      ...map(AZURE_MONITOR, azureMonitor.url), ...map('https://http-intake.logs.datadoghq.eu', datadog.url),
      ...map(ELASTIC, es.endpoint), ...map(NEW_RELIC, newRelic.url), ...map(OTEL_COLLECTOR, otlp.url),
    ]);
    expectSuccess(r);
    expectDocsExactlyOnce('file', auditFlowExecution, exportedDocs(path.join(r.cwd, 'logship-out')), false);
    expectExactlyOnce('cloudwatch', auditFlowExecution, cloudWatchKeys('production'));
    expectExactlyOnce('google logging', auditFlowExecution, google.written.map((e) => e.insertId));
    expectExactlyOnce('azure monitor', auditFlowExecution, azureMonitor.keys());
    expectExactlyOnce('datadog', auditFlowExecution, datadog.keys());
    expectExactlyOnce('elasticsearch', auditFlowExecution, indexedIds(es, 'kestra-logs'));
    expectExactlyOnce('new relic', auditFlowExecution, newRelic.keys());
    expectExactlyOnce('otlp', auditFlowExecution, otlp.keys());
  });
});

describe('pointing a flow elsewhere without editing it: --url-map and its errors', () => {
  it('rewrites every URL that starts with a mapped prefix, the longest prefix first, and leaves the rest', () => {
    const rewritten = applyUrlMap(
      { hosts: ['https://elastic.example.com:9200/a', 'https://elastic.example.com:9200'], other: 'https://elsewhere.example.com', n: 3 },
      [{ from: 'https://elastic.example.com:9200', to: 'http://127.0.0.1:1' }, { from: 'https://elastic.example.com:9200/a', to: 'http://127.0.0.1:2' }],
    );
    expect(rewritten).toEqual({ hosts: ['http://127.0.0.1:2', 'http://127.0.0.1:1'], other: 'https://elsewhere.example.com', n: 3 });
  });

  it('keeps a rewritten URL that came from a secret as secret as the original', () => {
    const config = loadConfigText(
      YAML.stringify({ source: { url: 'postgres://127.0.0.1/x' }, logExporters: [{ id: 'dd', type: 'datadog', apiKey: 'k', basePath: "{{ secret('DD_URL_WITH_TOKEN') }}" }] }),
      { secrets: { env: { DD_URL_WITH_TOKEN: 'https://intake.example.com/t0ken-4711' }, secretsDir: undefined }, urlMap: [{ from: 'https://intake.example.com', to: 'http://127.0.0.1:9' }] },
    );
    const basePath = (config.logExporters[0] as unknown as { basePath: string }).basePath;
    expect(basePath).toBe('http://127.0.0.1:9/t0ken-4711');
    expect(cameFromSecret(basePath)).toBe(true);
    expect(redact(`POST ${basePath}/api/v2/logs failed`)).toBe('POST http://127.0.0.1:9***/api/v2/logs failed');
  });

  it('refuses a --url-map that is not FROM=TO with two URLs, exit 2', async () => {
    const r = await runCli(['plan', '--config', path.join(FLOWS, '09-elasticsearch.yaml'), '--url-map', 'elastic.example.com=http://127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: --url-map: must be FROM=TO, two http:// or https:// URLs (got "elastic.example.com=http://127.0.0.1:9")\n');
  });

  it('refuses a --url-map whose FROM matches no URL in the flow (a typo would reach the real endpoint), exit 2', async () => {
    const r = await runCli(['plan', '--config', path.join(FLOWS, '09-elasticsearch.yaml'), '--url-map', 'https://elastic.example.org:9200=http://127.0.0.1:9'], { env: { ES_PASSWORD } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: --url-map: https://elastic.example.org:9200 matches no URL in the config\n');
  });

  it('takes LOGSHIP_URL_MAP (FROM=TO entries separated by whitespace) after the flags: a flag wins for the same FROM', () => {
    const env = { LOGSHIP_URL_MAP: ' https://a.example.com=http://127.0.0.1:2\n\thttps://b.example.com=http://127.0.0.1:3 ' };
    expect(urlMapOf(['https://a.example.com=http://127.0.0.1:4'], env)).toEqual([
      { from: 'https://a.example.com', to: 'http://127.0.0.1:4' },
      { from: 'https://b.example.com', to: 'http://127.0.0.1:3', option: 'LOGSHIP_URL_MAP' },
    ]);
    expect(urlMapOf(undefined, {})).toEqual([]);
    expect(() => urlMapOf(undefined, { LOGSHIP_URL_MAP: 'https://a.example.com' })).toThrow('LOGSHIP_URL_MAP: must be FROM=TO, two http:// or https:// URLs (got "https://a.example.com")');
  });

  it('points a flow elsewhere by LOGSHIP_URL_MAP alone, and names the variable when its FROM matches nothing (exit 2)', async () => {
    const flow = path.join(FLOWS, '09-elasticsearch.yaml');
    const config = loadConfigText(fs.readFileSync(flow, 'utf8'), {
      secrets: { env: { ES_PASSWORD }, secretsDir: undefined },
      urlMap: urlMapOf(undefined, { LOGSHIP_URL_MAP: `${ELASTIC}=http://127.0.0.1:2` }),
    });
    expect(JSON.stringify(config.logExporters)).toContain('"http://127.0.0.1:2"');
    expect(JSON.stringify(config.logExporters)).not.toContain(ELASTIC);
    const typo = await runCli(['plan', '--config', flow], { env: { ES_PASSWORD, LOGSHIP_URL_MAP: 'https://elastic.example.org:9200=http://127.0.0.1:9' } });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('logship: LOGSHIP_URL_MAP: https://elastic.example.org:9200 matches no URL in the config\n');
  });

  it('names the option when an Azure Monitor tenantId is not one Entra ID accepts', () => {
    const exporter = { id: 'a', type: 'azure-monitor', endpoint: 'https://dce.example.com', ruleId: RULE_ID, streamName: 's', tenantId: 'my tenant', clientId: 'c', clientSecret: 's' };
    let message = '';
    try {
      loadConfigText(YAML.stringify({ source: { url: 'postgres://127.0.0.1/x' }, logExporters: [exporter] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toBe('logExporters[0].tenantId: must be a Microsoft Entra tenant ID, a GUID or a domain such as contoso.onmicrosoft.com (got "my tenant")');
  });
});
