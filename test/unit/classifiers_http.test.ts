import protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/sinks/delivery/decision.js';
import { JsonItemsRequest } from '../../src/sinks/delivery/json_items.js';
import type { HttpAnswer } from '../../src/sinks/delivery/http_client.js';
import { decideDatadogAnswer, describeDatadogError } from '../../src/sinks/datadog/retry.js';
import { decideBulkError, decideBulkResponse, describeError, isRetryableRequestError } from '../../src/sinks/elasticsearch/retry.js';
import type { LokiRequest } from '../../src/sinks/loki/request_builder.js';
import { decideLokiResponse } from '../../src/sinks/loki/retry.js';
import { decideNewRelicAnswer, describeNewRelicError } from '../../src/sinks/newrelic/retry.js';
import { decideOtlpResponse, statusMessage } from '../../src/sinks/otlp/retry.js';
import { decideHecResponse, parseHecReply, type HecReply } from '../../src/sinks/splunk/retry.js';

const reasonOf = (d: Decision): string => ('reason' in d ? d.reason : '');

/** Each HTTP platform's response classification (its `retry.ts`), answer by answer, in process. */

function jsonItems(n: number): JsonItemsRequest {
  const items = Array.from({ length: n }, (_, i) => `{"i":${i}}`);
  const ends = new Int32Array(n);
  let at = 0;
  items.forEach((s, i) => (ends[i] = at += s.length));
  return new JsonItemsRequest(Buffer.from(items.join('')), ends, items.map((_, i) => `k${i}`), new Float64Array(n));
}

describe('Datadog and New Relic intakes (whole-request answers)', () => {
  const dd = (status: number, body = '', retryAfter?: string, rateLimitReset?: string, n = 4) => decideDatadogAnswer(jsonItems(n), { status, body, retryAfter, rateLimitReset });
  const ddError = JSON.stringify({ errors: [{ status: '403', title: 'Forbidden', detail: 'API key is invalid' }] });
  it('2xx is delivered', () => expect(dd(202, '{}')).toEqual({ kind: 'ok' }));
  it('401/403 stop the run with the key hint and the platform\'s words', () => {
    expect(dd(403, ddError)).toEqual({ kind: 'fatal', reason: 'HTTP 403: Forbidden: API key is invalid (check apiKey: Datadog refused the API key)' });
    expect(decideNewRelicAnswer(jsonItems(2), { status: 403, body: '{"error":"Invalid API key"}' })).toEqual({ kind: 'fatal', reason: 'HTTP 403: Invalid API key (check apiKey: New Relic refused the key)' });
  });
  it('429/5xx/408 retry, honouring Retry-After, else X-RateLimit-Reset', () => {
    expect(dd(429, '', '2')).toMatchObject({ kind: 'retry', retryAfterMs: 2000 });
    expect(dd(429, '', undefined, '7')).toMatchObject({ kind: 'retry', retryAfterMs: 7000 });
    expect(dd(503, JSON.stringify({ errors: ['try again'] }))).toEqual({ kind: 'retry', reason: 'HTTP 503: try again', retryAfterMs: undefined });
    expect(dd(408).kind).toBe('retry');
  });
  it('413 halves the request', () => expect(dd(413, JSON.stringify({ errors: [{ title: 'Payload Too Large' }] }))).toEqual({ kind: 'split', reason: 'HTTP 413: Payload Too Large (request too large)' }));
  it('a 400 halves until the refused log is alone, which is dead-lettered with the parsed body', () => {
    const body = JSON.stringify({ errors: [{ title: 'Bad Request', detail: 'log rejected' }] });
    expect(dd(400, body, undefined, undefined, 3)).toEqual({ kind: 'split', reason: 'HTTP 400: Bad Request: log rejected' });
    expect(dd(400, body, undefined, undefined, 1)).toEqual({ kind: 'partial', retry: [], dead: [{ item: 0, status: 400, reason: 'HTTP 400: Bad Request: log rejected', error: JSON.parse(body) }], reason: 'HTTP 400: Bad Request: log rejected' });
  });
  it('any other 4xx stops the run', () => expect(dd(404, '').kind).toBe('fatal'));
  it('error bodies become one short phrase', () => {
    expect(describeDatadogError('{"errors":["plain"]}')).toBe('plain');
    expect(describeDatadogError('not json\n  at all')).toBe('not json at all');
    expect(describeDatadogError('{}')).toBe('');
    expect(describeNewRelicError('{"error":{"title":"Too big"}}')).toBe('Too big');
    expect(describeNewRelicError('{"message":"m"}')).toBe('m');
    expect(describeNewRelicError('x'.repeat(300))).toHaveLength(200);
  });
});

describe('Splunk HEC', () => {
  const http = (status: number, headers: Record<string, string> = {}): HttpAnswer => ({ status, headers, body: Buffer.alloc(0) });
  const hec = (status: number, reply: HecReply, o: { useAck?: boolean; acked?: boolean; headers?: Record<string, string>; count?: number } = {}) =>
    decideHecResponse({ http: http(status, o.headers), reply, useAck: o.useAck ?? false, acked: o.acked }, o.count ?? 5, 'L');
  it('code 0 is delivered; under useAck only once acknowledged, else resent', () => {
    expect(hec(200, { text: 'Success', code: 0 })).toEqual({ kind: 'ok' });
    expect(hec(200, { text: 'Success', code: 0, ackId: 3 }, { useAck: true, acked: true })).toEqual({ kind: 'ok' });
    expect(hec(200, { text: 'Success', code: 0, ackId: 3 }, { useAck: true, acked: false })).toEqual({ kind: 'retry', reason: 'L: request 3 was not acknowledged by the indexers within ackTimeout' });
    expect(hec(200, { text: 'Success', code: 0 }, { useAck: true }).kind).toBe('fatal');
  });
  it('a wrong token (401/403, codes 1-4) stops the run', () => {
    expect(hec(403, { text: 'Invalid token', code: 4 })).toEqual({ kind: 'fatal', reason: 'L: HTTP 403 Invalid token (code 4): authentication failed: check the token' });
    expect(hec(401, { text: 'Token is required', code: 2 }).kind).toBe('fatal');
  });
  it('busy (code 9), 5xx and 429 retry with Retry-After; 413 halves', () => {
    expect(hec(503, { text: 'Server is busy', code: 9 }, { headers: { 'retry-after': '3' } })).toEqual({ kind: 'retry', reason: 'L: HTTP 503 Server is busy (code 9)', retryAfterMs: 3000 });
    expect(hec(500, { text: 'Internal server error', code: 8 })).toMatchObject({ kind: 'retry' });
    expect(hec(429, {}, { headers: { 'retry-after': '1' } })).toMatchObject({ kind: 'retry', retryAfterMs: 1000 });
    expect(hec(413, { text: 'too large', code: 27 }).kind).toBe('split');
  });
  it('invalid-event-number N: N dead-lettered, the events after it resent (all but N under useAck)', () => {
    const reply = { text: 'Invalid data format', code: 6, 'invalid-event-number': 2 };
    expect(hec(400, reply)).toEqual({ kind: 'partial', retry: [3, 4], dead: [{ item: 2, status: 400, reason: 'Invalid data format (code 6)', error: reply }], reason: 'L: HTTP 400 Invalid data format (code 6)' });
    expect(hec(400, reply, { useAck: true })).toMatchObject({ retry: [0, 1, 3, 4] });
    expect(hec(400, { ...reply, 'invalid-event-number': 9 }).kind).toBe('fatal'); // out of range: not trusted
  });
  it('index not allowed (7) and acknowledgement disabled (14) stop the run', () => {
    expect(reasonOf(hec(400, { text: 'Incorrect index', code: 7 }))).toMatch(/the token may not write to this index$/);
    expect(hec(400, { text: 'ACK is disabled', code: 14 })).toEqual({ kind: 'fatal', reason: 'L: HTTP 400 ACK is disabled (code 14): useAck is on but the token has indexer acknowledgement disabled' });
  });
  it('parseHecReply tolerates bodies that are not JSON objects', () => {
    expect(parseHecReply(Buffer.from('{"text":"Success","code":0}'))).toEqual({ text: 'Success', code: 0 });
    expect(parseHecReply(Buffer.from('<html>'))).toEqual({});
    expect(parseHecReply(Buffer.from('3'))).toEqual({});
  });
});

describe('OTLP/HTTP', () => {
  const answer = (status: number, headers: Record<string, string> = {}, body: Buffer | string = ''): HttpAnswer => ({ status, headers, body: Buffer.from(body) });
  const otlp = (a: HttpAnswer, partialSuccess?: { rejectedLogRecords?: number | string; errorMessage?: string }) => decideOtlpResponse({ http: a, partialSuccess }, 3, 'L');
  it('2xx without rejections is delivered; rejected records dead-letter the whole request, never retried', () => {
    expect(otlp(answer(200))).toEqual({ kind: 'ok' });
    expect(otlp(answer(200), { rejectedLogRecords: '0' })).toEqual({ kind: 'ok' });
    const d = otlp(answer(200), { rejectedLogRecords: 1, errorMessage: 'too long' });
    expect(d).toMatchObject({ kind: 'partial', retry: [] });
    expect(d.kind === 'partial' && d.dead.map((x) => x.item)).toEqual([0, 1, 2]);
    expect(d.kind === 'partial' && d.dead[0]).toMatchObject({ reason: 'collector rejected 1 of the 3 log records of this request (OTLP partial_success does not say which): too long', error: { rejectedLogRecords: 1, requestLogRecords: 3, errorMessage: 'too long' } });
  });
  it('only 429, 502, 503 and 504 retry (with Retry-After); a 500 is fatal', () => {
    for (const s of [429, 502, 503, 504]) expect(otlp(answer(s, { 'retry-after': '2' }))).toEqual({ kind: 'retry', reason: `L: HTTP ${s}`, retryAfterMs: 2000 });
    expect(otlp(answer(500, { 'content-type': 'application/json' }, '{"code":13,"message":"exporter queue broke"}'))).toEqual({ kind: 'fatal', reason: 'L: HTTP 500 (exporter queue broke)' });
  });
  it('400 and 413 halve; 401/403 stop with the header hint; other 4xx stop', () => {
    expect(otlp(answer(400)).kind).toBe('split');
    expect(otlp(answer(413)).kind).toBe('split');
    expect(otlp(answer(401, { 'content-type': 'text/plain' }, 'invalid or missing authorization'))).toEqual({ kind: 'fatal', reason: 'L: HTTP 401 (invalid or missing authorization): authentication failed: check authorizationHeaderName/authorizationHeaderValue' });
    expect(otlp(answer(404)).kind).toBe('fatal');
  });
  it('statusMessage reads a google.rpc.Status in protobuf or JSON, else the first line of text', () => {
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 0).int32(3);
    w.uint32((2 << 3) | 2).string('bad record');
    expect(statusMessage(answer(400, { 'content-type': 'application/x-protobuf' }, Buffer.from(w.finish())))).toBe('bad record');
    expect(statusMessage(answer(400, { 'content-type': 'application/json' }, '{"message":"m"}'))).toBe('m');
    expect(statusMessage(answer(400, {}, 'plain\nsecond'))).toBe('plain');
    expect(statusMessage(answer(400))).toBe('');
  });
});

describe('Loki', () => {
  const request = (count: number) => ({ count }) as LokiRequest;
  const loki = (status: number, text = '', retryAfter: string | null = null, count = 4) => decideLokiResponse(request(count), { status, text, retryAfter }, 'L');
  it('2xx delivered; 429 and 5xx retry honouring Retry-After; 413 halves', () => {
    expect(loki(204)).toEqual({ kind: 'ok' });
    expect(loki(429, 'Ingestion rate limit exceeded\nmore', '4')).toEqual({ kind: 'retry', reason: 'L: HTTP 429: Ingestion rate limit exceeded', retryAfterMs: 4000 });
    expect(loki(500, 'rpc error')).toMatchObject({ kind: 'retry' });
    expect(loki(413).kind).toBe('split');
  });
  it('a 400 refusing entries halves the push (Loki drops the identical resent ones), down to the entry', () => {
    const text = "entry with timestamp 2026-03-01 10:00:00 +0000 UTC ignored, reason: 'entry too far behind, oldest acceptable timestamp is: 2026-03-01T10:30:00Z' for stream: {job=\"kestra\"},\ntotal ignored: 1 out of 4\n";
    expect(loki(400, text)).toEqual({ kind: 'split', reason: `Loki refused entries: ${text.split('\n')[0]}` });
    expect(reasonOf(loki(400, text, null, 1))).toMatch(/^Loki refused the entry: /);
    for (const t of ['max entry size exceeded', 'line too long', 'timestamp too new', 'greater_than_max_sample_age']) expect(loki(400, t).kind).toBe('split');
  });
  it('other 4xx (bad labels, a wrong token) stop the run', () => {
    expect(loki(400, 'error parsing labels')).toEqual({ kind: 'fatal', reason: 'L: HTTP 400: error parsing labels' });
    expect(loki(401, 'invalid token').kind).toBe('fatal');
  });
});

describe('Elasticsearch and OpenSearch _bulk', () => {
  const item = (status: number, error?: unknown) => ({ create: { status, ...(error ? { error } : {}) } });
  it('errors: false is delivered; a wrong item count is fatal', () => {
    expect(decideBulkResponse({ errors: false, items: [item(201), item(201)] }, 2, 'create')).toEqual({ kind: 'ok' });
    expect(decideBulkResponse({ errors: false, items: [item(201)] }, 2, 'create')).toEqual({ kind: 'fatal', reason: '_bulk answered 1 items for 2 documents' });
    expect(decideBulkResponse({}, 2, 'create').kind).toBe('fatal');
  });
  it('per item: 409 on create counts as delivered, 429/5xx resent alone, other statuses dead-lettered', () => {
    const parse = { type: 'mapper_parsing_exception', reason: 'failed to parse field [message]' };
    const d = decideBulkResponse({ errors: true, items: [item(201), item(409), item(429), item(400, parse), item(503)] }, 5, 'create');
    expect(d).toEqual({ kind: 'partial', retry: [2, 4], dead: [{ item: 3, status: 400, reason: 'mapper_parsing_exception: failed to parse field [message]', error: parse }], reason: '2 documents answered 429/5xx' });
    expect(decideBulkResponse({ errors: true, items: [item(409)] }, 1, 'index')).toMatchObject({ kind: 'partial', dead: [{ item: 0, status: 409 }] });
    expect(decideBulkResponse({ errors: true, items: [item(201), item(409)] }, 2, 'create')).toEqual({ kind: 'ok' });
  });
  it('an item answered 401/403 stops the run', () => {
    expect(decideBulkResponse({ errors: true, items: [item(403, { type: 'security_exception', reason: 'no' })] }, 1, 'create')).toEqual({ kind: 'fatal', reason: 'document rejected with HTTP 403: security_exception: no' });
  });
  it('a thrown client error: by its status (413 halves, 429 honours Retry-After), else retried', () => {
    const explain = (_e: unknown, what: string) => new Error(`es: ${what}`);
    const withStatus = (statusCode: number, headers: Record<string, string> = {}) => Object.assign(new Error('x'), { meta: { statusCode, headers } });
    expect(decideBulkError(withStatus(413), explain)).toEqual({ kind: 'split', reason: 'es: _bulk failed' });
    expect(decideBulkError(withStatus(429, { 'retry-after': '5' }), explain)).toEqual({ kind: 'retry', reason: 'es: _bulk failed', retryAfterMs: 5000 });
    expect(decideBulkError(withStatus(401), explain).kind).toBe('fatal');
    expect(decideBulkError(Object.assign(new Error('x'), { name: 'ConnectionError' }), explain)).toEqual({ kind: 'retry', reason: 'es: _bulk failed' });
    // A dropped connection's ConnectionError carries meta.statusCode 0 (Elasticsearch) or null (OpenSearch): retried.
    for (const statusCode of [0, null]) expect(decideBulkError(Object.assign(new Error('other side closed'), { name: 'ConnectionError', meta: { statusCode, headers: {} } }), explain)).toEqual({ kind: 'retry', reason: 'es: _bulk failed' });
  });
  it('isRetryableRequestError and describeError', () => {
    expect(isRetryableRequestError({ meta: { statusCode: 503 } })).toBe(true);
    expect(isRetryableRequestError({ statusCode: 400 })).toBe(false);
    for (const name of ['ConnectionError', 'TimeoutError', 'NoLivingConnectionsError', 'RequestAbortedError']) expect(isRetryableRequestError({ name })).toBe(true);
    expect(isRetryableRequestError({ name: 'ResponseError' })).toBe(false);
    expect(describeError(undefined)).toBe('no reason given');
    expect(describeError('text')).toBe('text');
    expect(describeError({ other: 1 })).toBe('{"other":1}');
  });
});
