import { describe, expect, it } from 'vitest';
import { BulkRequestBuilder, parseIndexPattern } from '../../src/sinks/elasticsearch/request_builder.js';
import { RowBatchBuilder } from '../../src/source/row_batch.js';

/** Elasticsearch/OpenSearch `_bulk` bodies and index patterns, in process. */

const at = (iso: string) => Date.parse(iso) * 1000;

describe('index patterns', () => {
  it('renders the UTC event day or hour; a fixed name stays fixed', () => {
    const daily = parseIndexPattern('indexName', 'kestra-logs-{yyyy.MM.dd}');
    expect(daily.unit).toBe('day');
    expect(daily.render(at('2026-03-01T23:59:59.999Z'))).toBe('kestra-logs-2026.03.01');
    expect(daily.render(at('2026-03-02T00:00:00Z'))).toBe('kestra-logs-2026.03.02');
    const hourly = parseIndexPattern('indexName', 'l-{yy-MM-dd_HH}');
    expect([hourly.unit, hourly.render(at('2026-03-01T07:30:00Z'))]).toEqual(['hour', 'l-26-03-01_07']);
    const fixed = parseIndexPattern('indexName', 'kestra-logs');
    expect([fixed.unit, fixed.render(at('2026-03-01T00:00:00Z')), fixed.dateOf('kestra-logs')]).toEqual([null, 'kestra-logs', null]);
  });
  it('reads the date back out of an index name (for prune)', () => {
    const daily = parseIndexPattern('indexName', 'kestra-logs-{yyyy.MM.dd}');
    expect(daily.dateOf('kestra-logs-2026.03.01')).toEqual(new Date('2026-03-01T00:00:00Z'));
    expect(daily.dateOf('kestra-logs-2026.3.1')).toBeNull();
    expect(daily.dateOf('other-2026.03.01')).toBeNull();
  });
  it.each([
    ['a leading underscore', 'index names may not start with -, _ or +', '_logs-{yyyy}'],
    ['a space', 'index names may not contain " " (nor \\ / * ? " < > | space , # :)', 'my logs-{yyyy}'],
    ['a colon', 'index names may not contain ":" (nor \\ / * ? " < > | space , # :)', 'a:b'],
  ])('refuses an index name with %s', (_what, message, pattern) => {
    expect(() => parseIndexPattern('indexName', pattern)).toThrow(`indexName: ${message}`);
  });
});

describe('BulkRequestBuilder', () => {
  const rows = () => {
    const b = new RowBatchBuilder(4, 1 << 20);
    b.addStrings('k1', at('2026-03-01T23:00:00Z'), '{"message": "a"}');
    b.addStrings('k"2\\', at('2026-03-02T01:00:00Z'), '{"message": "b"}');
    b.addStrings('k3', at('2026-03-02T02:00:00Z'), '{"message": "c"}');
    return b.take();
  };
  const builder = (opType: 'create' | 'index' = 'create', maxDocs = 10, maxBytes = 1 << 20) => new BulkRequestBuilder(opType, maxDocs, maxBytes, parseIndexPattern('indexName', 'logs-{yyyy.MM.dd}'));

  it('writes an action line with the row key as _id (JSON-escaped) and the daily index, then the document as read', () => {
    const b = builder();
    const batch = rows();
    for (let i = 0; i < 3; i++) expect(b.add(batch, i)).toBeNull();
    const r = b.take();
    expect(r.body.toString().split('\n')).toEqual([
      '{"create":{"_index":"logs-2026.03.01","_id":"k1"}}', '{"message": "a"}',
      '{"create":{"_index":"logs-2026.03.02","_id":"k\\"2\\\\"}}', '{"message": "b"}',
      '{"create":{"_index":"logs-2026.03.02","_id":"k3"}}', '{"message": "c"}',
      '',
    ]);
    expect(r.describe(1)).toEqual({ key: 'k"2\\', tsMicros: batch.tsMicros[1], document: Buffer.from('{"message": "b"}'), extra: { _index: 'logs-2026.03.02', _id: 'k"2\\' } });
    const sub = r.subset([2, 0]);
    expect(sub.body.toString()).toBe(`${r.item(2).toString()}${r.item(0).toString()}`);
    expect(sub.doc(0).toString()).toBe('{"message": "c"}');
    expect(r.split()!.map((h) => h.count)).toEqual([2, 1]);
  });
  it('opType index; full at maxDocs or at maxBytes', () => {
    const b = builder('index', 2);
    const batch = rows();
    b.add(batch, 0);
    expect(b.full).toBe(false);
    b.add(batch, 1);
    expect(b.full).toBe(true);
    expect(b.take().body.toString()).toMatch(/^\{"index":\{"_index"/);
    const bySize = builder('create', 100, 60);
    bySize.add(batch, 0);
    expect(bySize.full).toBe(true);
  });
});
