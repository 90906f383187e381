import { startBulkServer, type BulkServer } from '../helpers/bulk_server.js';
import { tempDir } from '../helpers/cli.js';
import type { Fault, PlatformEndpoint, ReceivedRequest } from '../helpers/platform_server.js';
import { AzureMonitorServer, makeCertificate } from '../helpers/platforms/azure_monitor_server.js';
import { CloudWatchServer, cloudWatchError } from '../helpers/platforms/cloudwatch_server.js';
import { DatadogIntake, datadogError } from '../helpers/platforms/datadog_server.js';
import { GoogleLoggingServer, makeServiceAccount } from '../helpers/platforms/google_logging_server.js';
import { KinesisServer, kinesisError } from '../helpers/platforms/kinesis_server.js';
import { LokiServer } from '../helpers/platforms/loki_server.js';
import { NewRelicLogApi, newRelicError } from '../helpers/platforms/newrelic_server.js';
import { OtlpServer } from '../helpers/platforms/otlp_server.js';
import { SplunkServer } from '../helpers/platforms/splunk_server.js';
import { trustInThisProcess } from '../helpers/trust.js';

/** A host where nothing listens (below the ephemeral ports, and not on fetch's list of bad ports). */
export const NOWHERE = '127.0.0.1:2';

/**
 * What the delivery contract needs of one destination's fake platform: how to point the exporter
 * at it (right credentials, wrong ones, nowhere), its own transient faults, and what it received.
 * Options are the exporter's YAML options without id, type and the delivery tuning the suite sets.
 */
export interface ContractPlatform {
  readonly server: PlatformEndpoint;
  /** Options for one test (a fresh log group or stream where the platform has them). */
  options(): Promise<Record<string, unknown>>;
  /** Options whose credentials the platform refuses, the refused secret, and the message the refusal must read. */
  wrongCredential(options: Record<string, unknown>): { options: Record<string, unknown>; secret: string; message: RegExp };
  unreachable(options: Record<string, unknown>): Record<string, unknown>;
  /** Injects the platform's transient faults (in its own error shapes) on the coming data requests. */
  injectFaults(): void;
  /** A throttling answer asking to wait `retryAfter` (the platform's own header), or null: the platform has none (AWS). */
  throttle: ((retryAfterSeconds: number) => Fault) | null;
  /** A request carrying rows (not a check, token or ack request). */
  isData(r: ReceivedRequest): boolean;
  /** Row keys the platform took, in arrival order, resends included (what a query shows where it keeps them). */
  keys(options: Record<string, unknown>): Promise<string[]>;
  /** For platforms that drop resent rows: how many they dropped (a resend the keys do not show). */
  droppedResends?(): number;
  stop(): Promise<void>;
}

/** Starts a fresh fake platform: one per test, so no test sees another's rows or faults. */
export type ContractFixture = () => Promise<ContractPlatform>;

/** AWS throttles with ThrottlingException and no Retry-After: there is nothing to honour. */
export const NO_RETRY_AFTER = ['cloudwatch', 'kinesis'];

const httpDefaults = (server: PlatformEndpoint) => ({ server, stop: () => server.stop() });

const datadog: ContractFixture = async () => {
  const key = 'dd-api-key-0123456789abcdef';
  const intake = await new DatadogIntake(key).start();
  return {
    ...httpDefaults(intake),
    options: async () => ({ basePath: intake.url, apiKey: key }),
    wrongCredential: (o) => ({ options: { ...o, apiKey: 'wrong-key-5555' }, secret: 'wrong-key-5555', message: /^datadog exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\): HTTP 403: Forbidden: API key is invalid \(check apiKey: Datadog refused the API key\)$/ }),
    unreachable: (o) => ({ ...o, basePath: `http://${NOWHERE}` }),
    injectFaults: () => intake.failNext([
      { status: 429, headers: { 'retry-after': '0' }, body: datadogError(429, 'Too Many Requests', 'rate limited').body },
      datadogError(500, 'Internal Server Error', 'try again'), { reset: true }, datadogError(503, 'Service Unavailable', 'try again'),
      datadogError(413, 'Payload Too Large', 'batch is above 5MB uncompressed'),
    ]),
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s) }, body: datadogError(429, 'Too Many Requests', 'rate limited').body }),
    isData: (r) => r.path === '/api/v2/logs',
    keys: async () => intake.keys(),
  };
};

const newrelic: ContractFixture = async () => {
  const key = 'NRAK-0123456789ABCDEFGHIJ';
  const api = await new NewRelicLogApi(key).start();
  return {
    ...httpDefaults(api),
    options: async () => ({ basePath: api.url, apiKey: key }),
    wrongCredential: (o) => ({ options: { ...o, apiKey: 'NRAK-wrong-7777' }, secret: 'NRAK-wrong-7777', message: /^newrelic exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\): HTTP 403: Invalid API key \(check apiKey: New Relic refused the key\)$/ }),
    unreachable: (o) => ({ ...o, basePath: `http://${NOWHERE}` }),
    injectFaults: () => api.failNext([{ status: 429, headers: { 'retry-after': '0' }, body: newRelicError(429, 'Too Many Requests').body }, newRelicError(502, 'Bad Gateway'), { reset: true }, newRelicError(500, 'Internal Server Error')]),
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s) }, body: newRelicError(429, 'Too Many Requests').body }),
    isData: (r) => r.path === '/log/v1',
    keys: async () => api.keys(),
  };
};

const splunk: ContractFixture = async () => {
  const token = 'b7e3c1a2-hec-token-for-tests';
  const hec = await new SplunkServer(token).start();
  const isData = (r: ReceivedRequest) => r.path === '/services/collector/event' && r.body.length > 0;
  return {
    ...httpDefaults(hec),
    options: async () => ({ host: hec.url, token }),
    wrongCredential: (o) => ({ options: { ...o, token: 'wrong-token-0042' }, secret: 'wrong-token-0042', message: /^splunk exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\): HTTP 403 Invalid token \(code 4\): authentication failed: check the token$/ }),
    unreachable: (o) => ({ ...o, host: `http://${NOWHERE}` }),
    injectFaults: () => hec.failNext([
      { status: 503, headers: { 'retry-after': '0' }, body: JSON.stringify({ text: 'Server is busy', code: 9 }) },
      { status: 500, body: JSON.stringify({ text: 'Internal server error', code: 8 }) }, { reset: true },
      { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ text: 'Server is busy', code: 9 }) },
    ], isData),
    throttle: (s) => ({ status: 503, headers: { 'retry-after': String(s) }, body: JSON.stringify({ text: 'Server is busy', code: 9 }) }),
    isData,
    keys: async () => hec.keys(),
  };
};

const otlp: ContractFixture = async () => {
  const token = 'otel-token-for-tests-5150';
  const collector = await new OtlpServer({ name: 'Authorization', value: `Bearer ${token}` }).start();
  const isData = (r: ReceivedRequest) => r.body.length > 64; // the check sends an empty export request
  return {
    ...httpDefaults(collector),
    options: async () => ({ otlpEndpoint: collector.endpoint, authorizationHeaderName: 'Authorization', authorizationHeaderValue: `Bearer ${token}` }),
    wrongCredential: (o) => ({ options: { ...o, authorizationHeaderValue: 'Bearer wrong-token-7781' }, secret: 'wrong-token-7781', message: /^otlp exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\/v1\/logs\): HTTP 401 \(invalid or missing authorization\): authentication failed: check authorizationHeaderName\/authorizationHeaderValue$/ }),
    unreachable: (o) => ({ ...o, otlpEndpoint: `http://${NOWHERE}/v1/logs` }),
    injectFaults: () => collector.failNext([
      { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ code: 8, message: 'rate limited' }) },
      { status: 502 }, { status: 503 }, { status: 504 }, { reset: true },
    ], isData),
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s) } }),
    isData,
    keys: async () => collector.keys(),
  };
};

const loki: ContractFixture = async () => {
  const token = 'loki-token-7f3a';
  const server = await new LokiServer({ bearerToken: token, tenantId: 'team-a' }).start();
  const isData = (r: ReceivedRequest) => r.path === '/loki/api/v1/push' && r.body.toString() !== '{"streams":[]}';
  return {
    ...httpDefaults(server),
    options: async () => ({ url: server.url, tenantId: 'team-a', bearerToken: token }),
    wrongCredential: (o) => ({ options: { ...o, bearerToken: 'wrong-token-1234' }, secret: 'wrong-token-1234', message: /^loki exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\): HTTP 401 \(authentication failed: check basicAuth, bearerToken or tenantId\): invalid token$/ }),
    unreachable: (o) => ({ ...o, url: `http://${NOWHERE}` }),
    injectFaults: () => {
      // A partial refusal too (every 97th entry once): Loki stores the rest of that push, which the halving resends and Loki drops.
      let n = 0;
      server.refuseOnce = () => ++n % 97 === 0;
      server.failNext([
        { status: 429, headers: { 'retry-after': '0' }, body: 'Ingestion rate limit exceeded for user team-a (limit: 4194304 bytes/sec)\n' },
        { status: 500, body: 'rpc error: code = Unavailable desc = transport is closing\n' }, { reset: true },
      ], isData);
    },
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s) }, body: 'Ingestion rate limit exceeded\n' }),
    isData,
    keys: async () => server.entries().map((e) => e.entry.metadata.logship_key!),
    droppedResends: () => server.droppedDuplicates,
  };
};

const project = 'my-gcp-project';
let account: ReturnType<typeof makeServiceAccount> | undefined;

const google: ContractFixture = async () => {
  const sa = (account ??= makeServiceAccount(project));
  const server = await new GoogleLoggingServer({ projectId: project, clientEmail: sa.clientEmail, publicKey: sa.publicKey }).start();
  const isData = (r: ReceivedRequest) => r.path.endsWith('entries:write') && !r.body.toString().includes('"dryRun":true');
  return {
    ...httpDefaults(server),
    options: async () => ({ projectId: project, serviceAccount: sa.json, endpoint: server.url }),
    wrongCredential: (o) => {
      const stranger = makeServiceAccount(project);
      return { options: { ...o, serviceAccount: stranger.json }, secret: 'PRIVATE KEY', message: /^google-logging exporter 'c' \(projects\/my-gcp-project\/logs\/kestra\): HTTP 401 \(authentication failed: check the API key or token\) UNAUTHENTICATED: Request had invalid authentication credentials\./ };
    },
    unreachable: (o) => ({ ...o, endpoint: `http://${NOWHERE}` }),
    injectFaults: () => {
      const failedOnce = new Set<string>();
      let n = 0;
      server.entryError = (e) => (++n % 89 === 0 && !failedOnce.has(e.insertId) && failedOnce.add(e.insertId) ? { code: 14, message: 'The service is currently unavailable.' } : undefined);
      server.failNext([
        { status: 429, headers: { 'retry-after': '0' }, body: JSON.stringify({ error: { code: 429, message: "Quota exceeded for quota metric 'Write requests'", status: 'RESOURCE_EXHAUSTED' } }) },
        { status: 503, body: JSON.stringify({ error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } }) }, { reset: true },
      ], isData);
    },
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s) }, body: JSON.stringify({ error: { code: 429, message: 'Quota exceeded', status: 'RESOURCE_EXHAUSTED' } }) }),
    isData,
    keys: async () => server.written.map((e) => e.insertId),
  };
};

const AWS_KEYS = { region: 'us-east-1', accessKeyId: 'AKIDLOGSHIPTEST', secretKeyId: 'test-secret-key' };

const cloudwatch: ContractFixture = async () => {
  const server = await new CloudWatchServer().start();
  let n = 0;
  const isData = (r: ReceivedRequest) => String(r.headers['x-amz-target']).endsWith('PutLogEvents');
  return {
    ...httpDefaults(server),
    options: async () => ({ ...AWS_KEYS, endpointOverride: server.url, logGroupName: `kestra-${++n}`, logStreamName: 'production' }),
    wrongCredential: (o) => ({ options: { ...o, secretKeyId: 'wrong-secret-key' }, secret: 'wrong-secret-key', message: /^cloudwatch exporter 'c' \(kestra-\d+\/production, http:\/\/127\.0\.0\.1:\d+\): cannot describe log group kestra-\d+: InvalidSignatureException: The request signature we calculated does not match.* \(check accessKeyId\/secretKeyId, sessionToken or roleArn\)$/ }),
    unreachable: (o) => ({ ...o, endpointOverride: `http://${NOWHERE}` }),
    injectFaults: () => server.failNext([
      cloudWatchError('ThrottlingException', 'Rate exceeded'), cloudWatchError('ServiceUnavailableException', 'The service is unavailable. Please try again shortly.', 503),
      { reset: true }, cloudWatchError('ThrottlingException', 'Rate exceeded'),
    ], isData),
    throttle: null,
    isData,
    keys: async (o) => server.events(o.logGroupName as string, 'production').map((e) => (JSON.parse(e.message) as { logship_key: string }).logship_key),
  };
};

const kinesis: ContractFixture = async () => {
  const server = await new KinesisServer().start();
  let n = 0;
  const isData = (r: ReceivedRequest) => r.headers['x-amz-target'] === 'Kinesis_20131202.PutRecords';
  return {
    ...httpDefaults(server),
    options: async () => {
      const stream = `logs-${++n}`;
      await server.createStream(stream, 2);
      return { ...AWS_KEYS, endpoint: server.url, streamName: stream };
    },
    wrongCredential: (o) => ({ options: { ...o, secretKeyId: 'wrong-secret-key' }, secret: 'wrong-secret-key', message: /^kinesis exporter 'c' \(logs-\d+, http:\/\/127\.0\.0\.1:\d+\): cannot use stream logs-\d+: InvalidSignatureException: The request signature we calculated does not match/ }),
    unreachable: (o) => ({ ...o, endpoint: `http://${NOWHERE}` }),
    injectFaults: () => {
      // Per-record failures too (every 7th record, twice), which only the failed entries' resend repairs.
      server.failRecord = (rec, attempt) => (rec.partitionKey.charCodeAt(rec.partitionKey.length - 1) % 7 === 0 && attempt <= 2 ? (attempt === 1 ? 'ProvisionedThroughputExceededException' : 'InternalFailure') : undefined);
      server.failNext([
        kinesisError('ProvisionedThroughputExceededException', 'Rate exceeded for stream under account 000000000000.'),
        kinesisError('InternalFailure', 'Internal service failure.', 500), { reset: true }, kinesisError('LimitExceededException', 'Rate exceeded'),
      ], isData);
    },
    throttle: null,
    isData,
    keys: async (o) => (await server.consume(o.streamName as string)).map((r) => (JSON.parse(r.data.toString('utf8')) as { logship_key: string }).logship_key),
  };
};

let certificate: ReturnType<typeof makeCertificate> | undefined;

const azureMonitor: ContractFixture = async () => {
  const cert = (certificate ??= makeCertificate(tempDir('contract-azmon')));
  trustInThisProcess(cert.cert);
  const principal = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '3f4a1c2e-9b7d-4e21-8a55-0c6d2b9e7f10', clientSecret: 'right-client-secret-1' };
  const ruleId = 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf';
  const server = await new AzureMonitorServer(cert, principal, ruleId, 'kestraLogs').start();
  const isData = (r: ReceivedRequest) => r.path.startsWith('/dataCollectionRules/');
  const azureError = (status: number, code: string, message: string) => JSON.stringify({ error: { code, message } });
  return {
    ...httpDefaults(server),
    options: async () => ({ endpoint: server.url, authorityHost: server.url, ...principal, ruleId, streamName: 'kestraLogs' }),
    wrongCredential: (o) => ({ options: { ...o, clientSecret: 'wrong-client-secret-2' }, secret: 'wrong-client-secret-2', message: /^azure-monitor exporter 'c' \(https:\/\/127\.0\.0\.1:\d+\): cannot get a token from https:\/\/127\.0\.0\.1:\d+ for clientId 3f4a1c2e-\S+ in tenant 72f988bf-\S+: invalid_client \(AADSTS7000215: Invalid client secret provided\./ }),
    unreachable: (o) => ({ ...o, endpoint: `https://${NOWHERE}` }),
    injectFaults: () => server.failNext([
      { status: 429, headers: { 'retry-after': '0' }, body: azureError(429, 'TooManyRequests', 'Rate limit of 12000 requests per minute exceeded.') },
      { status: 503, body: azureError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.') }, { reset: true },
      { status: 500, body: azureError(500, 'InternalServerError', 'An internal error occurred.') },
      { status: 413, body: azureError(413, 'ContentLengthLimitExceeded', 'The request body exceeds the 1 MB limit.') },
    ], isData),
    throttle: (s) => ({ status: 429, headers: { 'retry-after-ms': String(s * 1000) }, body: azureError(429, 'TooManyRequests', 'slow down') }),
    isData,
    keys: async () => server.keys(),
  };
};

const search: ContractFixture = async () => {
  const auth = { username: 'kestra_user', password: 'right-password-1' };
  const server: BulkServer = await startBulkServer(auth);
  const isData = (r: ReceivedRequest) => r.path === '/_bulk';
  const rejected = (status: number) => JSON.stringify({ error: { type: 'es_rejected_execution_exception', reason: 'scripted' }, status });
  return {
    ...httpDefaults(server),
    options: async () => ({ indexName: 'kestra-logs-{yyyy.MM.dd}', connection: { hosts: [server.endpoint], basicAuth: auth } }),
    wrongCredential: (o) => ({ options: { ...o, connection: { hosts: [server.endpoint], basicAuth: { ...auth, password: 'wrong-password-2' } } }, secret: 'wrong-password-2', message: /^(elasticsearch|opensearch) exporter 'c' \(http:\/\/127\.0\.0\.1:\d+\): cannot reach the cluster: HTTP 401 \(authentication failed: check connection\.basicAuth or apiKey\)$/ }),
    unreachable: (o) => ({ ...o, connection: { hosts: [`http://${NOWHERE}`], basicAuth: auth } }),
    injectFaults: () => {
      // Single items answered 429 as well as whole requests: only those items are resent.
      server.itemStatus = (id, _doc, attempt) => (id.charCodeAt(3) % 3 === 0 && attempt === 1 ? 429 : undefined);
      server.failNext([{ status: 429, headers: { 'x-elastic-product': 'Elasticsearch' }, body: rejected(429) }, { status: 503, body: rejected(503) }, { reset: true }], isData);
    },
    throttle: (s) => ({ status: 429, headers: { 'retry-after': String(s), 'x-elastic-product': 'Elasticsearch' }, body: rejected(429) }),
    isData,
    keys: async () => [...server.docs.values()].flatMap((m) => [...m.keys()]),
    droppedResends: () => server.received.length - server.count(),
  };
};

/** One fixture per document-shaped destination of the registry, by its type name. */
export const CONTRACT_FIXTURES: Record<string, ContractFixture> = {
  datadog, newrelic, splunk, otlp, loki, 'google-logging': google, cloudwatch, kinesis, 'azure-monitor': azureMonitor, elasticsearch: search, opensearch: search,
};
