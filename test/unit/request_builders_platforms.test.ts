import zlib from 'node:zlib';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import snappy from 'snappyjs';
import { describe, expect, it } from 'vitest';
import { microsToTs } from '../../src/core/keyset.js';
import type { AzureMonitorExporterConfig } from '../../src/sinks/azure_monitor/config.js';
import { LogsRequestBuilder, toStreamRow } from '../../src/sinks/azure_monitor/request_builder.js';
import type { CloudWatchExporterConfig } from '../../src/sinks/cloudwatch/config.js';
import { PutLogEventsBuilder } from '../../src/sinks/cloudwatch/request_builder.js';
import type { GoogleLoggingExporterConfig } from '../../src/sinks/google_logging/config.js';
import { toValue, WriteRequestBuilder } from '../../src/sinks/google_logging/request_builder.js';
import type { KinesisExporterConfig } from '../../src/sinks/kinesis/config.js';
import { PutRecordsBuilder } from '../../src/sinks/kinesis/request_builder.js';
import type { LokiExporterConfig } from '../../src/sinks/loki/config.js';
import { pushSchema } from '../../src/sinks/loki/push_proto.js';
import { LokiRequestBuilder } from '../../src/sinks/loki/request_builder.js';
import type { OtlpExporterConfig } from '../../src/sinks/otlp/config.js';
import { OtlpRequestBuilder } from '../../src/sinks/otlp/request_builder.js';
import type { SplunkExporterConfig } from '../../src/sinks/splunk/config.js';
import { hecTime, HecRequestBuilder } from '../../src/sinks/splunk/request_builder.js';
import type { RequestBuilder, DeliveryRequest } from '../../src/sinks/delivery/types.js';
import { RowBatchBuilder, type RowBatch } from '../../src/source/row_batch.js';
import { exporterConfig } from '../helpers/exporter_config.js';

/** Each platform's request builder: the wire format it produces and the limits it keeps, in process. */

const TS = Date.parse('2026-03-01T10:00:00Z') * 1000 + 123_456;
const DOC = { tenantId: 'main', namespace: 'company.team', flowId: 'f', level: 'WARN', message: 'hello é', thread: 't1' };
function batch(docs: (string | Record<string, unknown>)[], stepMicros = 1): RowBatch {
  const b = new RowBatchBuilder(docs.length + 1, 1 << 30);
  docs.forEach((d, i) => b.addStrings(`key-${i}`, TS + i * stepMicros, typeof d === 'string' ? d : JSON.stringify(d)));
  return b.take();
}
/** Adds rows while they fit (as the core does); returns the requests and the refusals. */
function build<R extends DeliveryRequest>(builder: RequestBuilder<R>, rows: RowBatch): { requests: R[]; refused: (string | null)[] } {
  const requests: R[] = [];
  const refused: (string | null)[] = [];
  for (let i = 0; i < rows.count; i++) {
    if (builder.count > 0 && builder.fits?.(rows, i) === false) requests.push(builder.take());
    refused.push(builder.add(rows, i));
    if (builder.full) requests.push(builder.take());
  }
  if (builder.count > 0) requests.push(builder.take());
  return { requests, refused };
}

describe('Splunk HEC', () => {
  const config = (over = {}) => exporterConfig<SplunkExporterConfig>({ type: 'splunk', host: 'http://hec:8088', token: 't', ...over });
  const builder = (c: SplunkExporterConfig) => new HecRequestBuilder(c, { source: 'kestra', sourcetype: 'st', index: 'main', host: 'h' }, c.chunk, c.maxBytes, false);
  it('hecTime keeps the exact microsecond as decimal seconds', () => {
    expect(hecTime(1_700_000_000_000_001)).toBe('1700000000.000001');
    expect(hecTime(TS)).toBe(`${Math.floor(TS / 1e6)}.123456`);
  });
  it('an event: time, template, the document as PostgreSQL wrote it, indexed fields (severity, Kestra fields, key)', () => {
    const { requests } = build(builder(config()), batch([DOC]));
    const event = JSON.parse(requests[0]!.body.toString());
    expect(event).toEqual({ time: Number(hecTime(TS)), host: 'h', source: 'kestra', sourcetype: 'st', index: 'main', event: DOC, fields: { severity: 'WARN', tenantId: 'main', namespace: 'company.team', flowId: 'f', thread: 't1', logship_key: 'key-0' } });
    expect(requests[0]!.body.toString()).toContain(`"time":${hecTime(TS)},`);
  });
  it('never builds a request over maxBytes, and refuses an event larger than maxBytes alone', () => {
    const docs = Array.from({ length: 40 }, (_, i) => ({ ...DOC, message: `m${i}`.padEnd(100, 'x') }));
    docs[7] = { ...DOC, message: 'y'.repeat(3000) };
    const { requests, refused } = build(builder(config({ maxBytes: 2048 })), batch(docs));
    expect(requests.every((r) => r.body.length <= 2048)).toBe(true);
    expect(refused[7]).toMatch(/^event of \d+ bytes exceeds the request limit maxBytes \(2048\): HEC would refuse the whole request$/);
    expect(requests.reduce((n, r) => n + r.count, 0)).toBe(39);
  });
  it('gzip: the wire is the compressed body; subsets keep the events', () => {
    const c = config();
    const { requests } = build(new HecRequestBuilder(c, { source: 's', sourcetype: undefined, index: undefined, host: undefined }, 10, c.maxBytes, true), batch([DOC, DOC, DOC]));
    const r = requests[0]!;
    expect(zlib.gunzipSync(r.wire).equals(r.body)).toBe(true);
    expect(r.subset([2]).describe(0).key).toBe('key-2');
  });
});

describe('OTLP/HTTP', () => {
  const config = (over = {}) => exporterConfig<OtlpExporterConfig>({ type: 'otlp', otlpEndpoint: 'http://c:4318/v1/logs', ...over });
  const builder = (c: OtlpExporterConfig, json: boolean, maxBytes = c.maxBytes) => {
    const serializer = json ? JsonLogsSerializer : ProtobufLogsSerializer;
    return new OtlpRequestBuilder(c, resourceFromAttributes({ 'service.name': 'kestra' }), { name: 'logship' }, (r) => serializer.serializeRequest(r), json, c.chunk, maxBytes, false);
  };
  it('a record: body = message, exact time in ns, spec severity, other fields and the key as attributes', () => {
    const { requests } = build(builder(config(), true), batch([DOC, { ...DOC, level: 'TRACE', attempt: { n: 1 } }]));
    const decoded = JSON.parse(requests[0]!.wire.toString());
    const records = decoded.resourceLogs[0].scopeLogs[0].logRecords;
    expect(records[0]).toMatchObject({ timeUnixNano: String(BigInt(TS) * 1000n), severityNumber: 13, severityText: 'WARN', body: { stringValue: 'hello é' } });
    const attributes = Object.fromEntries(records[0].attributes.map((a: { key: string; value: { stringValue: string } }) => [a.key, a.value.stringValue]));
    expect(attributes).toEqual({ tenantId: 'main', namespace: 'company.team', flowId: 'f', thread: 't1', logship_key: 'key-0' });
    expect(records[1].severityNumber).toBe(1);
    expect(records[1].attributes.find((a: { key: string }) => a.key === 'attempt').value.stringValue).toBe('{"n":1}');
  });
  it.each([[false], [true]])('the encoded body stays within maxBytes (json %s), and a record over it alone is refused', (json) => {
    const docs = Array.from({ length: 60 }, (_, i) => ({ ...DOC, message: `record ${i} `.padEnd(200, 'z') }));
    docs[10] = { ...DOC, message: 'q'.repeat(5000) };
    const { requests, refused } = build(builder(config(), json, 4096), batch(docs));
    expect(requests.every((r) => r.encodedBytes <= 4096)).toBe(true);
    expect(refused[10]).toMatch(/^log record of up to \d+ encoded bytes exceeds the request limit maxBytes \(4096\)$/);
    expect(requests.reduce((n, r) => n + r.count, 0)).toBe(59);
  });
});

describe('Loki', () => {
  const config = (over = {}) => exporterConfig<LokiExporterConfig>({ type: 'loki', url: 'http://loki:3100', ...over });
  const decode = (body: Buffer) => pushSchema().PushRequest.toObject(pushSchema().PushRequest.decode(Buffer.from(snappy.uncompress(body))), { longs: String }) as { streams: { labels: string; entries: { timestamp: { seconds: string; nanos: number }; line: string; structuredMetadata: { name: string; value: string }[] }[] }[] };
  it('protobuf push: sorted labels make the stream, the line is the document with its key first, other fields structured metadata', () => {
    const { requests } = build(new LokiRequestBuilder(config()), batch([DOC, { ...DOC, namespace: 'system', 'my-field': 1 }]));
    const push = decode(requests[0]!.body);
    expect(push.streams.map((s) => s.labels)).toEqual(['{job="kestra", level="WARN", namespace="company.team"}', '{job="kestra", level="WARN", namespace="system"}']);
    const [entry] = push.streams[0]!.entries;
    expect(entry!.timestamp).toEqual({ seconds: String(Math.floor(TS / 1e6)), nanos: 123_456_000 });
    expect(JSON.parse(entry!.line)).toEqual({ logship_key: 'key-0', ...DOC });
    expect(entry!.line.startsWith('{"logship_key":"key-0",')).toBe(true);
    expect(Object.fromEntries(entry!.structuredMetadata.map((m) => [m.name, m.value]))).toEqual({ tenantId: 'main', flowId: 'f', thread: 't1', logship_key: 'key-0' }); // not the labels, not the message (it is in the line)
    expect(push.streams[1]!.entries[0]!.structuredMetadata.find((m) => m.name === '_my_field')?.value).toBe('1');
  });
  it('JSON push with the message as the line; gzip', () => {
    const { requests } = build(new LokiRequestBuilder(config({ protocol: 'json', lineFormat: 'message' })), batch([DOC]));
    expect(requests[0]!.contentEncoding).toBe('gzip');
    const push = JSON.parse(zlib.gunzipSync(requests[0]!.body).toString());
    expect(push.streams[0].values[0].slice(0, 2)).toEqual([`${Math.floor(TS / 1e6)}123456000`, 'hello é']);
  });
  it('refuses a line over maxLineSize and a row no label has a value for', () => {
    const { refused } = build(new LokiRequestBuilder(config({ maxLineSize: '1KiB', labels: { ns: '{namespace}' } })), batch([{ ...DOC, message: 'x'.repeat(2000) }, { message: 'no namespace' }]));
    expect(refused[0]).toMatch(/^line of \d+ bytes is over Loki's max_line_size \(1024 bytes\)$/);
    expect(refused[1]).toBe('no label has a value (Loki refuses a stream without labels)');
  });
  it('a request spans at most the out-of-order window', () => {
    const { requests } = build(new LokiRequestBuilder(config({ outOfOrderWindow: 'PT1M' })), batch([DOC, DOC, DOC, DOC], 40e6));
    expect(requests.map((r) => r.count)).toEqual([2, 2]);
    expect(requests[0]!.maxTsMicros - requests[0]!.minTsMicros).toBeLessThanOrEqual(60e6);
  });
});

describe('CloudWatch Logs', () => {
  const builder = (chunk = 100) => new PutLogEventsBuilder(chunk, exporterConfig<CloudWatchExporterConfig>({ type: 'cloudwatch', logGroupName: 'g', logStreamName: 's', region: 'us-east-1' }).keyAttribute);
  it('events: ms timestamp, the document with its key as the message, 26 bytes of overhead each', () => {
    const { requests } = build(builder(), batch([DOC, DOC]));
    const r = requests[0]!;
    expect(r.events[0]).toEqual({ timestamp: Math.floor(TS / 1000), message: JSON.stringify(DOC).replace(/}$/, ', "logship_key":"key-0"}') });
    expect(r.bytes).toBe(r.events.reduce((n, e) => n + Buffer.byteLength(e.message) + 26, 0));
    expect(r.subset([1]).keys).toEqual(['key-1']);
  });
  it('cuts calls at 1,048,576 bytes and before 24 hours; refuses an event over 1,048,550 bytes', () => {
    const big = { message: 'b'.repeat(400_000) };
    const { requests } = build(builder(), batch([big, big, big, big]));
    expect(requests.map((r) => r.count)).toEqual([2, 2]);
    expect(requests.every((r) => r.bytes <= 1_048_576)).toBe(true);
    const day = build(builder(), batch([DOC, DOC, DOC], 12 * 3600e6));
    expect(day.requests.map((r) => r.count)).toEqual([2, 1]);
    expect(build(builder(), batch([{ message: 'h'.repeat(1_048_600) }])).refused[0]).toMatch(/^the message is \d+ bytes; CloudWatch Logs accepts at most 1048550 bytes per event/);
  });
});

describe('Kinesis Data Streams', () => {
  const config = (over = {}) => exporterConfig<KinesisExporterConfig>({ type: 'kinesis', streamName: 'logs', region: 'us-east-1', ...over });
  it('a record: the document with its key; the row key as partition key; the fixed stream', () => {
    const { requests } = build(new PutRecordsBuilder(config()), batch([DOC]));
    const r = requests[0]!;
    expect(JSON.parse(r.data[0]!.toString())).toEqual({ ...DOC, logship_key: 'key-0' });
    expect([r.streams[0], r.partitionKeys[0]]).toEqual(['logs', 'key-0']);
    expect(r.describe(0)).toMatchObject({ key: 'key-0', extra: { stream: 'logs', partitionKey: 'key-0' } });
  });
  it('a streamName template and partitionKeys from fields (MD5 past 256 characters)', () => {
    const c = config({ streamName: 'logs-{namespace}', partitionKeys: ['flowId', 'thread'] });
    const { requests, refused } = build(new PutRecordsBuilder(c), batch([DOC, { ...DOC, namespace: 'bad name!' }, { message: 'no ns' }, { ...DOC, flowId: 'f'.repeat(300) }]));
    expect(requests[0]!.streams).toEqual(['logs-company.team', 'logs-company.team']);
    expect(requests[0]!.partitionKeys[0]).toBe('f|t1');
    expect(requests[0]!.partitionKeys[1]).toMatch(/^[0-9a-f]{32}$/);
    expect(refused[1]).toMatch(/not a valid Kinesis stream name/);
    expect(refused[2]).toBe('the record has no namespace for streamName logs-{namespace}');
  });
  it('refuses a record over maxRecordBytes', () => {
    const { refused } = build(new PutRecordsBuilder(config({ maxRecordBytes: '4KiB' })), batch([{ message: 'z'.repeat(5000) }]));
    expect(refused[0]).toMatch(/^the record is 5\d{3} bytes \(data and partition key\); Kinesis accepts at most 4096 per record \(maxRecordBytes\)$/);
  });
});

describe('Azure Monitor Logs Ingestion', () => {
  const config = (over = {}) => exporterConfig<AzureMonitorExporterConfig>({ type: 'azure-monitor', endpoint: 'https://dce.ingest.monitor.azure.com', ruleId: 'dcr-69f0b123041d4d6e9f2bf72aad0b62cf', streamName: 'Custom-Kestra', ...over });
  it('a stream row: the document\'s fields, TimeGenerated to the µs, the key, SeverityLevel', () => {
    expect(toStreamRow(batch([DOC]), 0, config())).toEqual({ ...DOC, TimeGenerated: microsToTs(TS), logship_key: 'key-0', SeverityLevel: 2 });
    expect(toStreamRow(batch(['"text"']), 0, config())).toEqual({ message: 'text', TimeGenerated: microsToTs(TS), logship_key: 'key-0' });
  });
  it('requests of chunk rows and about maxRequestBytes; a row over one call is refused; positionsOf maps the SDK\'s rows back', () => {
    const c = config();
    const { requests } = build(new LogsRequestBuilder(3, c.maxRequestBytes, c), batch([DOC, DOC, DOC, DOC]));
    expect(requests.map((r) => r.count)).toEqual([3, 1]);
    expect(requests[0]!.positionsOf([requests[0]!.logs[2], requests[0]!.logs[0], { other: 1 }])).toEqual([0, 2]);
    const small = build(new LogsRequestBuilder(100, 4096, c), batch([...Array(20).fill(DOC), { message: 'm'.repeat(5000) }]));
    expect(small.requests.every((r) => r.bytes <= 4096 + 400)).toBe(true);
    expect(small.refused[20]).toMatch(/^row is \d+ bytes as JSON, over the 4096 bytes of maxRequestBytes$/);
  });
});

describe('Google Cloud Logging', () => {
  const config = (over = {}) => exporterConfig<GoogleLoggingExporterConfig>({ type: 'google-logging', projectId: 'my-project', ...over });
  it('an entry: insertId = key, exact timestamp, mapped severity, the document as jsonPayload, Kestra fields and key as labels', () => {
    const { requests } = build(new WriteRequestBuilder(config({ labels: { env: 'test' } })), batch([DOC, { ...DOC, level: 'TRACE' }]));
    const [entry, trace] = requests[0]!.entries;
    expect(entry).toMatchObject({ insertId: 'key-0', timestamp: { seconds: Math.floor(TS / 1e6), nanos: 123_456_000 }, severity: 'WARNING', labels: { env: 'test', tenantId: 'main', namespace: 'company.team', flowId: 'f', thread: 't1', logship_key: 'key-0' } });
    expect(entry!.jsonPayload.fields.message).toEqual({ stringValue: 'hello é' });
    expect(trace!.severity).toBe('DEBUG');
    expect(requests[0]!.describe(0)).toMatchObject({ key: 'key-0', extra: { insertId: 'key-0' } });
  });
  it('refuses an entry over 256 KiB', () => {
    expect(build(new WriteRequestBuilder(config()), batch([{ message: 'y'.repeat(300 * 1024) }])).refused[0]).toMatch(/^entry of about \d+ bytes is over Cloud Logging's LogEntry limit \(262144 bytes\)$/);
  });
  it('toValue maps JSON to protobuf Struct values', () => {
    expect(toValue({ a: [1, 'x', true, null] })).toEqual({ structValue: { fields: { a: { listValue: { values: [{ numberValue: 1 }, { stringValue: 'x' }, { boolValue: true }, { nullValue: 0 }] } } } } });
  });
});
