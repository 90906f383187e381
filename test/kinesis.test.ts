import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { KinesisServer, kinesisError, type ConsumedRecord } from './helpers/platforms/kinesis_server.js';

const ROWS = 1500;
const NAMESPACES = ['company.team', 'company.team.backend', 'company.team.data.etl', 'company.teamx', 'system', 'company_team'];
let url: string;
let client: pg.Client;
/** key -> value text */
let source: Map<string, string>;
let server: KinesisServer;

const env = { AWS_ACCESS_KEY_ID: 'AKIDLOGSHIPTEST', AWS_SECRET_KEY_ID: 'test-secret-key', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

beforeAll(async () => {
  ({ url, client } = await freshDatabase('kinesis'));
  await seedKestraLogs(client, { rows: ROWS, start: isoAgo(6 * 3600), spanSeconds: 6 * 3600 - 120 });
  const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
  source = new Map(r.rows.map((x) => [x.key, x.v]));
  server = await new KinesisServer().start();
});
afterAll(async () => {
  await server.stop();
  await client.end();
});
afterEach(() => {
  server.assertFaultsDelivered();
  server.failRecord = () => undefined;
});

let n = 0;
async function setup(extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}, shards = 2) {
  const dir = tempDir('kinesis');
  const stream = `logs-${++n}`;
  await server.createStream(stream, shards);
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `kinesis-${n}`, ...top,
    logExporters: [{
      id: 'kin', type: 'kinesis', streamName: stream, region: 'us-east-1', endpoint: server.url,
      accessKeyId: "{{ secret('AWS_ACCESS_KEY_ID') }}", secretKeyId: "{{ secret('AWS_SECRET_KEY_ID') }}",
      chunk: 200, deadLetter: path.join(dir, 'dead'), minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
    }],
  });
  return { dir, file, stream };
}

/** Row keys of the consumed records, checking each record is the source document plus its key. */
function keysOf(records: ConsumedRecord[]): string[] {
  return records.map((r) => {
    const doc = JSON.parse(r.data.toString('utf8')) as Record<string, unknown>;
    const key = doc.logship_key as string;
    delete doc.logship_key;
    expect(doc).toEqual(JSON.parse(source.get(key)!));
    return key;
  });
}

async function storedOffset(file: string): Promise<unknown> {
  const r = await runCli(['state', '--config', file, '--json'], { env });
  return (JSON.parse(r.stdout) as { offset: unknown }).offset;
}

function deadLetters(dir: string): { key: string; reason: string; stream: string; partitionKey: string }[] {
  if (!fs.existsSync(path.join(dir, 'dead'))) return [];
  return fs.readdirSync(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

describe('kinesis exporter', () => {
  it('puts every row once into the stream, the row key as partition key and inside each record', async () => {
    const { file, stream } = await setup();
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    const records = await server.consume(stream);
    expect(compareKeys(source.keys(), keysOf(records))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    for (const rec of records) expect(rec.partitionKey).toBe((JSON.parse(rec.data.toString()) as { logship_key: string }).logship_key);
    expect(new Set(records.map((x) => x.shardId)).size).toBe(2);
  });

  it('routes records by a streamName template and partitions by the listed fields', async () => {
    const dir = tempDir('kinesis');
    const prefix = `ns${++n}-`;
    for (const ns of NAMESPACES) await server.createStream(`${prefix}${ns}`);
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `kinesis-${n}`,
      logExporters: [{ id: 'kin', type: 'kinesis', streamName: `${prefix}{namespace}`, partitionKeys: ['namespace', 'flowId'], region: 'us-east-1', endpoint: server.url, accessKeyId: 'AKIDLOGSHIPTEST', secretKeyId: "{{ secret('AWS_SECRET_KEY_ID') }}", deadLetter: path.join(dir, 'dead') }],
    });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
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
    expect(compareKeys(source.keys(), all)).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('resends only the failed entries of a partial failure, retries throttled and failed calls, and loses nothing', async () => {
    const { file, stream } = await setup();
    // Every 7th record fails its first two attempts in Kinesis' own per-record shape.
    server.failRecord = (rec, attempt) => (rec.partitionKey.charCodeAt(rec.partitionKey.length - 1) % 7 === 0 && attempt <= 2 ? (attempt === 1 ? 'ProvisionedThroughputExceededException' : 'InternalFailure') : undefined);
    const isPut = (q: { headers: Record<string, unknown> }) => q.headers['x-amz-target'] === 'Kinesis_20131202.PutRecords';
    server.failNext([
      kinesisError('ProvisionedThroughputExceededException', 'Rate exceeded for stream under account 000000000000.'),
      kinesisError('InternalFailure', 'Internal service failure.', 500),
      { reset: true },
      kinesisError('LimitExceededException', 'Rate exceeded'),
    ], isPut);
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    // Had whole requests been resent, the entries Kinesis had stored would now be duplicated.
    expect(compareKeys(source.keys(), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('aggregation packs KPL records per destination shard; a de-aggregating consumer gets every row once', async () => {
    const { file, stream } = await setup({ aggregation: true, partitionKeys: ['flowId'], chunk: 1000 }, {}, 4);
    const callsBefore = server.putRecordsCalls;
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    const records = await server.consume(stream);
    expect(compareKeys(source.keys(), keysOf(records))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(records.every((x) => x.aggregated)).toBe(true);
    // A consumer drops user records whose key hashes to another shard: there must be none.
    expect(records.filter((x) => !x.inOwnShard)).toEqual([]);
    expect(new Set(records.map((x) => x.shardId)).size).toBe(4);
    expect(server.putRecordsCalls - callsBefore).toBeLessThan(ROWS / 100);
  });

  it('bounds records in flight by maxPendingRecords', async () => {
    // concurrency 8 × chunk 100 would put 800 records in flight; maxPendingRecords caps it at 200.
    const { file, stream } = await setup({ chunk: 100, concurrency: 8, maxPendingRecords: 200 }, { workers: 1 });
    server.putDelayMs = 50;
    server.peakRecordsInFlight = 0;
    try {
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
    } finally {
      server.putDelayMs = 0;
    }
    expect(server.peakRecordsInFlight).toBeLessThanOrEqual(200);
    expect(compareKeys(source.keys(), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('a kill -9 mid-run, then a rerun: 0 missing and duplicates within workers × concurrency × chunk', async () => {
    const workers = 2, concurrency = 2, chunk = 50;
    const { file, stream } = await setup({ chunk, concurrency, maxPendingRecords: 100 }, { workers, source: { url, fetchSize: 50 } });
    const run = startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '60' } });
    const storedBefore = server.recordsStored;
    await killWhen(run, '450 records in Kinesis', () => server.recordsStored - storedBefore >= 450);
    const stored = server.recordsStored - storedBefore;
    expect(stored).toBeLessThan(ROWS);
    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('(resumed)');
    const cmp = compareKeys(source.keys(), keysOf(await server.consume(stream)));
    expect(cmp.missing).toEqual([]);
    expect(cmp.unexpected).toEqual([]);
    expect(cmp.duplicates).toBeLessThanOrEqual(workers * concurrency * chunk);
    console.log(`kinesis kill -9: ${stored} records stored before the kill, ${cmp.duplicates} duplicates after the rerun (bound ${workers * concurrency * chunk})`);
  });

  it('dead-letters a record over maxRecordBytes and exits 3', async () => {
    const { dir, file, stream } = await setup({ maxRecordBytes: '4KiB' });
    const doc = { tenantId: 'main', namespace: 'company.team', flowId: 'f', taskId: 't', executionId: 'e', taskRunId: 'tr', attemptNumber: 0, thread: 'th', level: 'INFO', message: 'z'.repeat(5000), timestamp: new Date(Date.now() - 3600_000).toISOString(), executionKind: 'NORMAL' };
    await client.query('INSERT INTO logs (key, value) VALUES ($1, $2)', ['big-kinesis', JSON.stringify(doc)]);
    try {
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      const dead = deadLetters(dir);
      expect(dead.map((d) => d.key)).toEqual(['big-kinesis']);
      expect(dead[0]!.reason).toMatch(/^the record is 5\d{3} bytes \(data and partition key\); Kinesis accepts at most 4096 per record \(maxRecordBytes\)$/);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.kin.deadLettered).toBe(1);
      expect(compareKeys(source.keys(), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    } finally {
      await client.query("DELETE FROM logs WHERE key = 'big-kinesis'");
    }
  });

  it('dead-letters records Kinesis refuses with a non-retryable per-record error', async () => {
    const { dir, file, stream } = await setup();
    const victim = [...source.keys()][77]!;
    server.failRecord = (rec) => (rec.partitionKey === victim ? 'InvalidArgumentException' : undefined);
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(3);
    expect(deadLetters(dir).map((d) => [d.key, d.reason])).toEqual([[victim, 'InvalidArgumentException: Internal service failure.']]);
    expect(compareKeys([...source.keys()].filter((k) => k !== victim), keysOf(await server.consume(stream)))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('a wrong secret key: one line naming the exporter, exit 1, offset unmoved', async () => {
    const { file, stream } = await setup();
    const r = await runCli(['run', '--config', file], { env: { ...env, AWS_SECRET_KEY_ID: 'wrong-secret-key' } });
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^logship: kinesis exporter 'kin' \\(${stream}, http://127\\.0\\.0\\.1:\\d+\\): cannot use stream ${stream}: InvalidSignatureException: The request signature we calculated does not match`));
    expect(r.stderr).not.toContain('wrong-secret-key');
    expect(await storedOffset(file)).toBeNull();
  });

  it('a missing stream: one line, exit 1, offset unmoved', async () => {
    const { file } = await setup({ streamName: 'no-such-stream' });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: kinesis exporter 'kin' (no-such-stream, ${server.url}): cannot use stream no-such-stream: stream no-such-stream does not exist`);
    expect(await storedOffset(file)).toBeNull();
  });

  it('an unreachable endpoint is retried maxAttempts times, then fails with one line, exit 1', async () => {
    const { file, stream } = await setup({ endpoint: 'http://127.0.0.1:9', maxAttempts: 3 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: kinesis exporter 'kin' \\(${stream}, http://127\\.0\\.0\\.1:9\\): cannot use stream ${stream}: .*ECONNREFUSED.*; gave up after 3 attempts$`));
    expect(await storedOffset(file)).toBeNull();
  });
});
