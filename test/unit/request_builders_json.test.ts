import { describe, expect, it } from 'vitest';
import { microsToTs } from '../../src/core/keyset.js';
import { KeyedDocument } from '../../src/sinks/aws/keyed_document.js';
import { datadogRequestBuilder, encodeDatadogEvent } from '../../src/sinks/datadog/request_builder.js';
import type { DatadogExporterConfig } from '../../src/sinks/datadog/config.js';
import { levelOf, toEvent } from '../../src/sinks/delivery/event.js';
import { JsonItemsRequest, utf8Prefix } from '../../src/sinks/delivery/json_items.js';
import { encodeNewRelicEvent, newRelicEnvelope, newRelicRequestBuilder, storedPart } from '../../src/sinks/newrelic/request_builder.js';
import type { NewRelicExporterConfig } from '../../src/sinks/newrelic/config.js';
import { RowBatchBuilder, type RowBatch } from '../../src/source/row_batch.js';
import { exporterConfig } from '../helpers/exporter_config.js';
import { batchesOf, kestraRows } from '../helpers/rows.js';

/** The shared event model and the JSON-array intakes' request builders (Datadog, New Relic), in process. */

const TS = Date.parse('2026-03-01T10:00:00Z') * 1000 + 123_456;
function batch(...docs: (string | Record<string, unknown>)[]): RowBatch {
  const b = new RowBatchBuilder(docs.length + 1, 1 << 30);
  docs.forEach((d, i) => b.addStrings(`key-${i}`, TS + i, typeof d === 'string' ? d : JSON.stringify(d)));
  return b.take();
}
const mapping = { messageField: 'message', levelField: 'level', keyAttribute: 'logship_key' };

describe('the event model (toEvent)', () => {
  it('takes message and level from their fields; every other field and the key become attributes', () => {
    const e = toEvent(batch({ message: 'hi', level: 'warning', namespace: 'ns', n: 1 }), 0, mapping);
    expect(e).toMatchObject({ key: 'key-0', tsMicros: TS, message: 'hi', level: 'WARN', attributes: { level: 'warning', namespace: 'ns', n: 1, logship_key: 'key-0' } });
  });
  it('a document that is not an object is the message; a message that is not a string is its JSON', () => {
    expect(toEvent(batch('"just text"'), 0, mapping).message).toBe('just text');
    expect(toEvent(batch('[1,2]'), 0, mapping).message).toBe('[1,2]');
    expect(toEvent(batch({ message: { a: 1 } }), 0, mapping).message).toBe('{"a":1}');
    expect(toEvent(batch({ other: 1 }), 0, mapping).message).toBe('{"other":1}');
  });
  it('a Kestra audit entry gets the message a person would write', () => {
    expect(toEvent(batch({ userId: 'ann@x', type: 'UPDATE', detail: { resource: 'FLOW', namespace: 'company.team', flowId: 'f' } }), 0, mapping).message).toBe('ann@x UPDATE FLOW company.team/f');
  });
  it('levelOf: Kestra levels, WARNING, FATAL/CRITICAL as ERROR; anything else none', () => {
    expect(['info', 'WARNING', 'fatal', 'Critical', 'TRACE'].map(levelOf)).toEqual(['INFO', 'WARN', 'ERROR', 'ERROR', 'TRACE']);
    expect([undefined, 3, 'verbose'].map(levelOf)).toEqual([undefined, undefined, undefined]);
  });
});

describe('KeyedDocument (CloudWatch and Kinesis messages)', () => {
  const keyed = new KeyedDocument('logship_key');
  it('appends the key to an object without parsing it, and wraps anything else', () => {
    expect(keyed.render(batch('{"a": 1}'), 0)).toBe('{"a": 1, "logship_key":"key-0"}');
    expect(keyed.render(batch('{ }'), 0)).toBe('{"logship_key":"key-0"}');
    expect(keyed.render(batch('"text"'), 0)).toBe('{"message":"text","logship_key":"key-0"}');
    expect(JSON.parse(keyed.render(batch({ message: 'é "q"' }), 0))).toEqual({ message: 'é "q"', logship_key: 'key-0' });
  });
});

describe('JsonItemsRequest and utf8Prefix', () => {
  const builder = () => datadogRequestBuilder(exporterConfig<DatadogExporterConfig>({ type: 'datadog', apiKey: 'k', chunk: 10 }));
  it('joins items into an array with an envelope; subset, split and describe slice the items', () => {
    const b = builder();
    const rows = batchesOf(kestraRows(3), 3)[0]!;
    for (let i = 0; i < 3; i++) b.add(rows, i);
    const r = b.take();
    const items = JSON.parse(r.body().toString()) as unknown[];
    expect(items).toHaveLength(3);
    expect(JSON.parse(r.body('{"x":', '}').toString()).x).toEqual(items);
    expect(r.bytes).toBe(r.body().length);
    expect(JSON.parse(r.subset([2, 0]).body().toString())).toEqual([items[2], items[0]]);
    expect(r.split()!.map((h) => h.count)).toEqual([2, 1]);
    expect(r.subset([1]).split()).toBeNull();
    expect(r.describe(1)).toEqual({ key: rows.key(1), tsMicros: rows.tsMicros[1], document: r.item(1) });
    expect(new JsonItemsRequest(Buffer.alloc(0), new Int32Array(0), [], new Float64Array(0)).body().toString()).toBe('[]');
  });
  it('utf8Prefix never cuts a character in half', () => {
    expect(utf8Prefix('aé€😀', 100)).toBe('aé€😀');
    expect(utf8Prefix('aé€😀', 2)).toBe('a');
    expect(utf8Prefix('aé€😀', 6)).toBe('aé€');
    expect(utf8Prefix('aé€😀', 9)).toBe('aé€');
    expect(utf8Prefix('abc', 0)).toBe('');
  });
});

describe('Datadog request builder', () => {
  const config = (over: Record<string, unknown> = {}) => exporterConfig<DatadogExporterConfig>({ type: 'datadog', apiKey: 'k', ...over });
  const encode = (doc: Record<string, unknown>, over = {}, max?: number) => {
    const e = encodeDatadogEvent(config(over), batch(doc), 0, max);
    return 'json' in e ? (JSON.parse(e.json) as Record<string, unknown>) : e;
  };
  it('a row as a Datadog log: status from the level, exact µs timestamp, service from the namespace, tags, source, key', () => {
    expect(encode({ message: 'm', level: 'WARN', namespace: 'company.team', flowId: 'f' }, { ddtags: ['env:test', 'team:data'] })).toEqual({
      level: 'WARN', namespace: 'company.team', flowId: 'f', logship_key: 'key-0', ddsource: 'kestra', service: 'company.team', ddtags: 'env:test,team:data', status: 'warning', timestamp: microsToTs(TS), message: 'm',
    });
    expect(encode({ message: 'm', level: 'TRACE' })).toMatchObject({ status: 'debug' });
    expect(encode({ message: 'm', namespace: 'n' }, { service: 'svc', hostname: 'h' })).toMatchObject({ service: 'svc', hostname: 'h' });
  });
  it('cuts a message over the per-log limit on a character boundary and marks the log; refuses a log too large without its message', () => {
    const cut = encode({ message: 'é'.repeat(3000), level: 'INFO' }, {}, 2000) as Record<string, unknown>;
    expect(cut.logship_truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(cut))).toBeLessThanOrEqual(2000);
    expect('é'.repeat((cut.message as string).length)).toBe(cut.message);
    expect(encode({ message: 'm', thread: 't'.repeat(3000) }, {}, 2000)).toEqual({ refused: expect.stringMatching(/^log is \d+ bytes even with an empty message; Datadog accepts at most 2000 bytes per log$/) });
  });
  it('closes a request at chunk logs', () => {
    const b = datadogRequestBuilder(config({ chunk: 4 }));
    const rows = batchesOf(kestraRows(5), 5)[0]!;
    for (let i = 0; i < 4; i++) {
      expect(b.full).toBe(false);
      b.add(rows, i);
    }
    expect(b.full).toBe(true);
    expect(b.take().count).toBe(4);
    expect(b.count).toBe(0);
  });
});

describe('New Relic request builder', () => {
  const config = (over: Record<string, unknown> = {}) => exporterConfig<NewRelicExporterConfig>({ type: 'newrelic', apiKey: 'k', ...over });
  it('the detailed payload: common attributes once, ms timestamp, the exact time, level, no duplicate message or timestamp attribute', () => {
    const c = config({ commonAttributes: { environment: 'test' } });
    const e = encodeNewRelicEvent(c, batch({ message: 'm', level: 'warning', timestamp: 'x', namespace: 'n' }), 0, 1_000_000);
    expect('json' in e && JSON.parse(e.json)).toEqual({ timestamp: Math.floor(TS / 1000), message: 'm', attributes: { level: 'WARN', namespace: 'n', logship_key: 'key-0', logship_timestamp: microsToTs(TS) } });
    expect(newRelicEnvelope(c)).toEqual({ prefix: '[{"common":{"attributes":{"logtype":"kestra","environment":"test"}},"logs":', suffix: '}]' });
  });
  it('keeps of each string what New Relic stores (4,094 characters + 128,000 bytes) and marks the log', () => {
    expect(storedPart('short')).toBe('short');
    const long = 'a'.repeat(4094) + 'b'.repeat(130_000);
    expect(storedPart(long)).toBe('a'.repeat(4094) + 'b'.repeat(128_000));
    const e = encodeNewRelicEvent(config(), batch({ message: long, thread: long }), 0, 1_000_000);
    const log = 'json' in e ? JSON.parse(e.json) : null;
    expect(log.message).toHaveLength(4094 + 128_000);
    expect(log.attributes.thread).toHaveLength(4094 + 128_000);
    expect(log.attributes.logship_truncated).toBe(true);
  });
  it('refuses a log with more than 255 attributes, and one no POST can carry', () => {
    const wide = Object.fromEntries(Array.from({ length: 260 }, (_, i) => [`f${i}`, i]));
    expect(encodeNewRelicEvent(config(), batch(wide), 0, 1_000_000)).toEqual({ refused: expect.stringMatching(/^log has 26\d attributes; New Relic accepts at most 255 per log$/) });
    expect(encodeNewRelicEvent(config(), batch({ message: 'x'.repeat(3000) }), 0, 1000)).toEqual({ refused: expect.stringMatching(/one New Relic POST carries at most 1000000 bytes$/) });
  });
  it('builds to a JSON budget (5 MB with gzip, 2 MB without) that the service halves before sending', () => {
    const fill = (b: ReturnType<typeof newRelicRequestBuilder>) => {
      const rows = batchesOf(kestraRows(4000).map((r) => ({ ...r, doc: { ...r.doc, message: 'x'.repeat(900) } })), 4000)[0]!;
      let i = 0;
      while (!b.full) b.add(rows, i++);
      return b.take();
    };
    const plain = fill(newRelicRequestBuilder(config({ compression: 'none', chunk: 5000 })));
    expect(plain.bytes).toBeLessThanOrEqual(2_000_000);
    expect(plain.bytes).toBeGreaterThan(1_000_000);
  });
});
