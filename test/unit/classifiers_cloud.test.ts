import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/sinks/delivery/decision.js';
import YAML from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import { AzureBlobService } from '../../src/sinks/azure_blob/service.js';
import type { AzureBlobExporterConfig } from '../../src/sinks/azure_blob/config.js';
import { LogsRequest } from '../../src/sinks/azure_monitor/request_builder.js';
import { decideCall, decideUpload, describeCallError } from '../../src/sinks/azure_monitor/retry.js';
import { decideCloudWatchError, decidePutLogEvents } from '../../src/sinks/cloudwatch/retry.js';
import { PermanentExportError } from '../../src/core/errors.js';
import { GcsService } from '../../src/sinks/gcs/service.js';
import type { GcsExporterConfig } from '../../src/sinks/gcs/config.js';
import { decideWriteError } from '../../src/sinks/google_logging/retry.js';
import { decideKinesisError, decidePutRecords } from '../../src/sinks/kinesis/retry.js';
import { S3Service } from '../../src/sinks/s3/service.js';
import type { S3ExporterConfig } from '../../src/sinks/s3/config.js';

const reasonOf = (d: Decision): string => ('reason' in d ? d.reason : '');

/** The cloud platforms' classification of answers and SDK errors (AWS, Azure, Google), in process. */

const aws = (name: string, status?: number, extra: Record<string, unknown> = {}) => Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });

describe('CloudWatch Logs', () => {
  it('PutLogEvents without rejectedLogEventsInfo is delivered', () => {
    expect(decidePutLogEvents(5, undefined)).toEqual({ kind: 'ok' });
    expect(decidePutLogEvents(5, {})).toEqual({ kind: 'ok' });
  });
  it('events outside the time window are dead-lettered by index range, with the reason, never resent', () => {
    const info = { tooOldLogEventEndIndex: 2, expiredLogEventEndIndex: 3, tooNewLogEventStartIndex: 4 };
    const d = decidePutLogEvents(6, info);
    expect(d).toMatchObject({ kind: 'partial', retry: [], reason: '5 events outside CloudWatch\'s time window' });
    expect(d.kind === 'partial' && d.dead.map((x) => [x.item, x.reason.replace('rejected by CloudWatch Logs: ', '')])).toEqual([
      [0, 'too old (more than 14 days before the time of the call)'],
      [1, 'too old (more than 14 days before the time of the call)'],
      [2, "older than the log group's retention period"],
      [4, 'too new (more than 2 hours after the time of the call)'],
      [5, 'too new (more than 2 hours after the time of the call)'],
    ]);
  });
  it('throttling and service errors retry; credentials and missing resources stop; DataAlreadyAccepted is delivered', () => {
    expect(decideCloudWatchError(aws('ThrottlingException', 400), 'L')).toEqual({ kind: 'retry', reason: 'L: ThrottlingException: ThrottlingException message' });
    expect(decideCloudWatchError(aws('ServiceUnavailableException', 503), 'L').kind).toBe('retry');
    expect(decideCloudWatchError(aws('SomethingNew', 400, { $retryable: { throttling: true } }), 'L').kind).toBe('retry');
    expect(decideCloudWatchError(aws('InvalidSignatureException', 403), 'L')).toEqual({ kind: 'fatal', reason: 'L: InvalidSignatureException: InvalidSignatureException message (check accessKeyId/secretKeyId, sessionToken or roleArn)' });
    expect(reasonOf(decideCloudWatchError(aws('ResourceNotFoundException', 400), 'L'))).toMatch(/\(the log group or stream was deleted during the run\)$/);
    expect(decideCloudWatchError(aws('InvalidParameterException', 400), 'L').kind).toBe('fatal');
    expect(decideCloudWatchError(aws('DataAlreadyAcceptedException', 400), 'L')).toEqual({ kind: 'ok' });
  });
  it('a connection failure retries with the SDK error text', () => {
    expect(decideCloudWatchError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), 'L')).toEqual({ kind: 'retry', reason: 'L: Error: connect ECONNREFUSED 127.0.0.1:9' });
  });
});

describe('Kinesis Data Streams', () => {
  it('a thrown call error: throttling retries; credentials, a missing stream and KMS stop', () => {
    expect(decideKinesisError(aws('ProvisionedThroughputExceededException', 400), 'L', 's').kind).toBe('retry');
    expect(decideKinesisError(aws('LimitExceededException', 400), 'L', 's').kind).toBe('retry');
    expect(decideKinesisError(aws('InternalFailure', 500), 'L', 's').kind).toBe('retry');
    expect(reasonOf(decideKinesisError(aws('UnrecognizedClientException', 400), 'L', 's'))).toMatch(/\(check accessKeyId\/secretKeyId, sessionToken or roleArn\)$/);
    expect(decideKinesisError(aws('ResourceNotFoundException', 400), 'L', 'logs')).toEqual({ kind: 'fatal', reason: 'L: stream logs does not exist (ResourceNotFoundException: ResourceNotFoundException message)' });
    expect(reasonOf(decideKinesisError(aws('KMSDisabledException', 400), 'L', 's'))).toMatch(/\(the stream's KMS key\)$/);
    expect(decideKinesisError(aws('ValidationException', 400), 'L', 's').kind).toBe('fatal');
  });
  it('per-record results: only the failed entries are resent, refused ones dead-lettered, KMS stops', () => {
    const ok = { failed: [null, null, null], thrown: [] };
    expect(decidePutRecords(ok, 'L')).toEqual({ kind: 'ok' });
    const mixed = decidePutRecords({ failed: [null, { code: 'ProvisionedThroughputExceededException', message: 'Rate exceeded' }, { code: 'InvalidArgumentException', message: 'bad' }, { code: 'InternalFailure', message: 'x' }], thrown: [] }, 'L');
    expect(mixed).toEqual({ kind: 'partial', retry: [1, 3], dead: [{ item: 2, reason: 'InvalidArgumentException: bad', error: { ErrorCode: 'InvalidArgumentException', ErrorMessage: 'bad' } }], reason: '2 records failed (ProvisionedThroughputExceededException: Rate exceeded)' });
    expect(decidePutRecords({ failed: [{ code: 'KMSAccessDeniedException', message: 'no' }], thrown: [] }, 'L').kind).toBe('fatal');
  });
  it('a call that threw for one stream: its items are resent; all items of thrown calls make a whole retry', () => {
    const throttled = aws('ThrottlingException', 400);
    expect(decidePutRecords({ failed: [null, null], thrown: [{ stream: 'a', items: [0, 1], error: throttled }] }, 'L')).toEqual({ kind: 'retry', reason: 'L: ThrottlingException: ThrottlingException message' });
    expect(decidePutRecords({ failed: [null, null, null], thrown: [{ stream: 'b', items: [2], error: throttled }] }, 'L')).toMatchObject({ kind: 'partial', retry: [2], dead: [] });
    expect(decidePutRecords({ failed: [null], thrown: [{ stream: 'a', items: [0], error: aws('ResourceNotFoundException', 400) }] }, 'L').kind).toBe('fatal');
  });
});

describe('Azure Monitor Logs Ingestion', () => {
  const restError = (statusCode: number | undefined, body?: string, headers: Record<string, string> = {}, props: Record<string, unknown> = {}) =>
    Object.assign(new Error('Operation failed'), { name: 'RestError', statusCode, response: { headers: { get: (n: string) => headers[n] }, bodyAsText: body }, ...props });
  it('a failed call by its status: 429/5xx retry with retry-after-ms or Retry-After, 413 halves, 4xx stop with a hint', () => {
    expect(decideCall(restError(429, '{"error":{"code":"TooManyRequests","message":"slow down"}}', { 'retry-after-ms': '1500' }), 'L')).toEqual({ kind: 'retry', reason: 'L: upload: HTTP 429 TooManyRequests: slow down', retryAfterMs: 1500 });
    expect(decideCall(restError(503, undefined, { 'retry-after': '2' }), 'L')).toMatchObject({ kind: 'retry', retryAfterMs: 2000 });
    expect(decideCall(restError(413), 'L').kind).toBe('split');
    expect(reasonOf(decideCall(restError(401), 'L'))).toMatch(/\(check tenantId, clientId and clientSecret\)$/);
    expect(decideCall(restError(403, '{"error":{"code":"OperationFailed","message":"no access"}}'), 'L')).toEqual({ kind: 'fatal', reason: 'L: upload: HTTP 403 OperationFailed: no access (the service principal needs the Monitoring Metrics Publisher role on the DCR)' });
    expect(reasonOf(decideCall(restError(404), 'L'))).toMatch(/\(check ruleId and streamName against the DCR\)$/);
  });
  it('a call without an answer (network) retries with its message', () => {
    expect(decideCall(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), 'L')).toEqual({ kind: 'retry', reason: 'L: upload: connect ECONNREFUSED 127.0.0.1:9' });
  });
  it('describeCallError: the service\'s {error:{code,message}}, else the SDK message, on one line', () => {
    expect(describeCallError(restError(500, 'not json'))).toBe('HTTP 500 Operation failed');
    expect(describeCallError(restError(400, undefined, {}, { code: 'InvalidStream' }))).toBe('HTTP 400 InvalidStream: Operation failed');
  });
  it('an upload whose calls partly failed resends only those rows; all failed: the first decision stands; fatal wins', () => {
    const logs = [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }];
    const request = new LogsRequest(logs, ['k1', 'k2', 'k3', 'k4'], new Float64Array(4), 100);
    expect(decideUpload(request, { failures: [] }, 'L')).toEqual({ kind: 'ok' });
    expect(decideUpload(request, { failures: [{ cause: restError(503, undefined, { 'retry-after': '3' }), failedLogs: [logs[3], logs[1]] }] }, 'L')).toEqual({ kind: 'partial', retry: [1, 3], dead: [], reason: '2 of 4 rows failed (L: upload: HTTP 503 Operation failed)', retryAfterMs: 3000 });
    expect(decideUpload(request, { failures: [{ cause: restError(413), failedLogs: logs }] }, 'L').kind).toBe('split');
    expect(decideUpload(request, { failures: [{ cause: restError(503), failedLogs: [logs[0]] }, { cause: restError(403), failedLogs: [logs[1]] }] }, 'L').kind).toBe('fatal');
  });
});

describe('Google Cloud Logging', () => {
  const gaxios = (status: number, error: Record<string, unknown>, headers: Record<string, string> = {}) => Object.assign(new Error(JSON.stringify({ error })), { status, response: { status, headers, data: { error } } });
  const partial = (errors: Record<string, { code: number; message: string }>) => gaxios(400, {
    code: 400, message: 'partial', status: 'INVALID_ARGUMENT',
    details: [{ '@type': 'type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors', logEntryErrors: errors }],
  });
  it('partial errors: entries failing for now are resent, invalid ones dead-lettered with their rpc code', () => {
    expect(decideWriteError(partial({ 1: { code: 14, message: 'unavailable' }, 3: { code: 3, message: 'invalid label' } }), 5, 'L')).toEqual({
      kind: 'partial', retry: [1], dead: [{ item: 3, status: 400, code: 'rpc_3', reason: 'invalid label', error: { code: 3, message: 'invalid label' } }], reason: '1 entries failed for now: partial',
    });
    expect(decideWriteError(partial({ 9: { code: 3, message: 'x' } }), 5, 'L')).toEqual({ kind: 'fatal', reason: 'L: partial errors name entry 9 of 5' });
  });
  it('429 and 5xx retry honouring Retry-After; 401 stops with the rpc status and message', () => {
    expect(decideWriteError(gaxios(429, { code: 429, message: 'Quota exceeded', status: 'RESOURCE_EXHAUSTED' }, { 'retry-after': '7' }), 5, 'L')).toEqual({ kind: 'retry', reason: 'L: HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded', retryAfterMs: 7000 });
    expect(decideWriteError(gaxios(503, { code: 503, message: 'unavailable', status: 'UNAVAILABLE' }), 5, 'L').kind).toBe('retry');
    expect(decideWriteError(gaxios(401, { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' }), 5, 'L')).toEqual({ kind: 'fatal', reason: 'L: HTTP 401 (authentication failed: check the API key or token) UNAUTHENTICATED: Request had invalid authentication credentials.' });
  });
  it('a gRPC-coded error maps to its HTTP status; no status at all is a transport failure', () => {
    expect(decideWriteError(Object.assign(new Error('quota'), { code: 8 }), 5, 'L').kind).toBe('retry');
    expect(decideWriteError(Object.assign(new Error('denied'), { code: 7 }), 5, 'L').kind).toBe('fatal');
    expect(decideWriteError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 5, 'L')).toEqual({ kind: 'retry', reason: 'L: ECONNREFUSED' });
  });
});

describe('object stores: an SDK failure as the run reports it (permanent for a non-transient 4xx)', () => {
  const parse = <T>(exporter: Record<string, unknown>): T =>
    loadConfigText(YAML.stringify({ logExporters: [{ id: 'o', ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } }).logExporters[0] as T;
  const explain = (service: object, err: unknown, what: string) => (service as { explain(e: unknown, w: string): Error })['explain'](err, what);

  it('S3', () => {
    const s3 = new S3Service(parse<S3ExporterConfig>({ type: 's3', bucket: 'b', region: 'us-east-1', accessKeyId: 'a', secretKeyId: 's' }));
    const denied = explain(s3, aws('AccessDenied', 403), 'cannot use the bucket');
    expect(denied).toEqual(new PermanentExportError("s3 exporter 'o' (bucket b): cannot use the bucket: HTTP 403 AccessDenied: AccessDenied message (credentials rejected or not allowed)"));
    expect(explain(s3, aws('NotFound', 404, { message: 'UnknownError' }), 'cannot use the bucket').message).toBe("s3 exporter 'o' (bucket b): cannot use the bucket: HTTP 404 NotFound (bucket b does not exist)");
    expect(explain(s3, aws('SlowDown', 503), 'upload failed')).not.toBeInstanceOf(PermanentExportError);
  });
  it('GCS', () => {
    const gcs = new GcsService(parse<GcsExporterConfig>({ type: 'gcs', bucket: 'b', projectId: 'p', endpoint: 'http://127.0.0.1:9' }));
    expect(explain(gcs, Object.assign(new Error('Not Found'), { code: 404 }), 'cannot use the bucket')).toEqual(new PermanentExportError("gcs exporter 'o' (bucket b): cannot use the bucket: HTTP 404 Not Found (bucket b does not exist)"));
    expect(explain(gcs, Object.assign(new Error('Forbidden'), { code: 403 }), 'w').message).toMatch(/\(credentials rejected or not allowed\)$/);
    expect(explain(gcs, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'w')).not.toBeInstanceOf(PermanentExportError);
    const already = new PermanentExportError('kept');
    expect(explain(gcs, already, 'w')).toBe(already);
  });
  it('Azure Blob', () => {
    const blob = new AzureBlobService(parse<AzureBlobExporterConfig>({ type: 'azure-blob', containerName: 'c', connectionString: 'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a;' }));
    expect(explain(blob, Object.assign(new Error('x'), { statusCode: 404, code: 'ContainerNotFound' }), 'cannot use the container')).toEqual(new PermanentExportError("azure-blob exporter 'o' (container c): cannot use the container: HTTP 404 ContainerNotFound (container c does not exist)"));
    expect(explain(blob, Object.assign(new Error('x'), { statusCode: 503, code: 'ServerBusy' }), 'w')).not.toBeInstanceOf(PermanentExportError);
  });
});
