import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PermanentExportError } from '../src/core/errors.js';
import { tempDir } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows, failureOf } from './helpers/in_process.js';
import { KinesisServer, type ConsumedRecord } from './helpers/platforms/kinesis_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * Kinesis Data Streams' rules (partition keys, stream templates, KPL aggregation, per-record
 * results, the record cap), in process against kinesalite behind the fault proxy. The delivery
 * contract (faults and partial failures, a wrong key, an unreachable endpoint, a crash) is
 * test/contract's; exit codes, the offset and kill -9 are test/delivery_e2e.test.ts's.
 */

const ROWS = 1500;
const NAMESPACES = ['company.team', 'company.team.backend', 'company.team.data.etl', 'company.teamx', 'system', 'company_team'];
let server: KinesisServer;
let rows: TestRow[];

beforeAll(async () => {
  server = await new KinesisServer().start();
  rows = kestraRows(ROWS);
});
afterAll(() => server.stop());
afterEach(() => {
  server.assertFaultsDelivered();
  server.failRecord = () => undefined;
});

let n = 0;
async function setup(extra: Record<string, unknown> = {}, shards = 2) {
  const stream = `logs-${++n}`;
  await server.createStream(stream, shards);
  const deadLetter = path.join(tempDir('kinesis'), 'dead');
  const config = exporterConfig({
    id: 'kin', type: 'kinesis', streamName: stream, region: 'us-east-1', endpoint: server.url, accessKeyId: 'AKIDLOGSHIPTEST', secretKeyId: 'test-secret-key',
    chunk: 200, deadLetter, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
  });
  return { config, stream, deadLetter };
}

/** Row keys of the consumed records, checking each record is the source document plus its key. */
function keysOf(records: ConsumedRecord[], source: TestRow[] = rows): string[] {
  const byKey = new Map(source.map((r) => [r.key, r.doc]));
  return records.map((r) => {
    const doc = JSON.parse(r.data.toString('utf8')) as Record<string, unknown>;
    const key = doc.logship_key as string;
    delete doc.logship_key;
    expect(doc).toEqual(byKey.get(key));
    return key;
  });
}
const allKeys = (source: TestRow[] = rows) => source.map((r) => r.key);

describe('kinesis exporter', () => {
  it('puts every row once into the stream, the row key as partition key and inside each record', async () => {
    const { config, stream } = await setup();
    await exportRows(config, rows);
    const records = await server.consume(stream);
    expect(compareKeys(allKeys(), keysOf(records))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    for (const rec of records) expect(rec.partitionKey).toBe((JSON.parse(rec.data.toString()) as { logship_key: string }).logship_key);
    expect(new Set(records.map((x) => x.shardId)).size).toBe(2);
  });

  it('routes records by a streamName template and partitions by the listed fields', async () => {
    const prefix = `ns${++n}-`;
    for (const ns of NAMESPACES) await server.createStream(`${prefix}${ns}`);
    const { config } = await setup({ streamName: `${prefix}{namespace}`, partitionKeys: ['namespace', 'flowId'] });
    await exportRows(config, rows);
    const all: string[] = [];
    for (const ns of NAMESPACES) {
      const records = await server.consume(`${prefix}${ns}`);
      for (const rec of records) {
        const doc = JSON.parse(rec.data.toString()) as { namespace: string; flowId: string };
        expect(doc.namespace).toBe(ns);
        expect(rec.partitionKey).toBe(`${doc.namespace}|${doc.flowId}`);
      }
      all.push(...keysOf(records));
    }
    expect(compareKeys(allKeys(), all)).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('aggregation packs KPL records per destination shard; a de-aggregating consumer gets every row once', async () => {
    const { config, stream } = await setup({ aggregation: true, partitionKeys: ['flowId'], chunk: 1000 }, 4);
    const callsBefore = server.putRecordsCalls;
    await exportRows(config, rows);
    const records = await server.consume(stream);
    expect(compareKeys(allKeys(), keysOf(records))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(records.every((x) => x.aggregated)).toBe(true);
    // A consumer drops user records whose key hashes to another shard: there must be none.
    expect(records.filter((x) => !x.inOwnShard)).toEqual([]);
    expect(new Set(records.map((x) => x.shardId)).size).toBe(4);
    expect(server.putRecordsCalls - callsBefore).toBeLessThan(ROWS / 100);
  });

  it('bounds records in flight by maxPendingRecords', async () => {
    // concurrency 8 × chunk 100 would put 800 records in flight; maxPendingRecords caps it at 200.
    const { config, stream } = await setup({ chunk: 100, concurrency: 8, maxPendingRecords: 200 });
    server.putDelayMs = 50;
    server.peakRecordsInFlight = 0;
    try {
      await exportRows(config, rows);
    } finally {
      server.putDelayMs = 0;
    }
    expect(server.peakRecordsInFlight).toBeGreaterThan(100);
    expect(server.peakRecordsInFlight).toBeLessThanOrEqual(200);
    expect(compareKeys(allKeys(), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('dead-letters a record over maxRecordBytes', async () => {
    const { config, stream, deadLetter } = await setup({ maxRecordBytes: '4KiB' });
    const withBig = kestraRows(300, { seed: 3 });
    withBig[100]!.doc.message = 'z'.repeat(5000);
    expect(await exportRows(config, withBig)).toMatchObject({ rows: 299, deadLettered: 1 });
    const dead = deadLetterRecords(deadLetter) as { key: string; reason: string }[];
    expect(dead.map((d) => d.key)).toEqual([withBig[100]!.key]);
    expect(dead[0]!.reason).toMatch(/^the record is 5\d{3} bytes \(data and partition key\); Kinesis accepts at most 4096 per record \(maxRecordBytes\)$/);
    expect(compareKeys(allKeys(withBig).filter((k) => k !== withBig[100]!.key), keysOf(await server.consume(stream), withBig))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('dead-letters records Kinesis refuses with a non-retryable per-record error', async () => {
    const { config, stream, deadLetter } = await setup();
    const victim = rows[77]!.key;
    server.failRecord = (rec) => (rec.partitionKey === victim ? 'InvalidArgumentException' : undefined);
    expect(await exportRows(config, rows)).toMatchObject({ deadLettered: 1 });
    expect(deadLetterRecords(deadLetter).map((d) => [d.key, d.reason])).toEqual([[victim, 'InvalidArgumentException: Internal service failure.']]);
    expect(compareKeys(allKeys().filter((k) => k !== victim), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('a missing stream fails the check at once, naming it', async () => {
    const { config } = await setup({ streamName: 'no-such-stream' });
    const failure = await failureOf(exportRows(config, rows.slice(0, 10)));
    expect(failure).toEqual(new PermanentExportError(`kinesis exporter 'kin' (no-such-stream, ${server.url}): cannot use stream no-such-stream: stream no-such-stream does not exist`));
  });
});
