import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { docsOfFile, listParts, runCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { CloudWatchServer, cloudWatchError } from './helpers/platforms/cloudwatch_server.js';
import { KinesisServer } from './helpers/platforms/kinesis_server.js';

const ROWS = 2000;
let url: string;
let client: pg.Client;
let cw: CloudWatchServer;
let kinesis: KinesisServer;
/** key -> value text */
let source: Map<string, string>;

const env = { AWS_ACCESS_KEY_ID: 'AKIDLOGSHIPTEST', AWS_SECRET_KEY_ID: 'test-secret-key', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

beforeAll(async () => {
  ({ url, client } = await freshDatabase('aws_fanout'));
  await seedKestraLogs(client, { rows: ROWS, start: isoAgo(3 * 3600), spanSeconds: 3 * 3600 - 120 });
  const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
  source = new Map(r.rows.map((x) => [x.key, x.v]));
  cw = await new CloudWatchServer().start();
  kinesis = await new KinesisServer().start();
});
afterAll(async () => {
  await cw.stop();
  await kinesis.stop();
  await client.end();
});
afterEach(() => cw.assertFaultsDelivered());

const keyOf = (message: string | Buffer) => (JSON.parse(message.toString()) as { logship_key: string }).logship_key;

describe('AWS fan-out', () => {
  it('one run feeds CloudWatch, Kinesis and a file archive; a CloudWatch failure moves no offset past what CloudWatch lacks, and the rerun completes all three', async () => {
    const dir = tempDir('fanout');
    await kinesis.createStream('fanout', 2);
    const aws = { region: 'us-east-1', accessKeyId: "{{ secret('AWS_ACCESS_KEY_ID') }}", secretKeyId: "{{ secret('AWS_SECRET_KEY_ID') }}", minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', deadLetter: path.join(dir, 'dead') };
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: 'fanout',
      logExporters: [
        { id: 'cw', type: 'cloudwatch', endpoint: cw.url, logGroupName: 'fanout', logStreamName: 's', chunk: 100, ...aws },
        { id: 'kin', type: 'kinesis', endpoint: kinesis.url, streamName: 'fanout', chunk: 100, ...aws },
        { id: 'archive', type: 'file', directory: path.join(dir, 'files') },
      ],
    });
    // CloudWatch rejects the 5th call as no retry could fix (a revoked key): the run must fail.
    let puts = 0;
    cw.failNext([cloudWatchError('AccessDeniedException', 'User is not authorized to perform: logs:PutLogEvents')], (q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents') && ++puts === 5);
    const failed = await runCli(['run', '--config', file], { env });
    // Once in a full suite this run ended by a signal instead (code null); say which, and how far it got.
    expect(failed.code, `signal ${failed.signal}; stderr ends: ${failed.stderr.slice(-1500)}`).toBe(1);
    expect(failed.stderr.trim().split('\n').at(-1)).toMatch(/^logship: .*cloudwatch exporter 'cw' \(fanout\/s, http:\/\/127\.0\.0\.1:\d+\): AccessDeniedException: User is not authorized to perform: logs:PutLogEvents \(check accessKeyId/);
    const state = JSON.parse((await runCli(['state', '--config', file, '--json'], { env })).stdout) as { offset: { ts: string; key: string | null } | null };
    const inCloudWatch = new Set(cw.events('fanout', 's').map((e) => keyOf(e.message)));
    expect(inCloudWatch.size).toBeLessThan(ROWS);
    if (state.offset) {
      // Every row at or before the stored offset must already be in CloudWatch.
      const covered = await client.query<{ key: string }>(`SELECT key FROM logs WHERE ("timestamp", key COLLATE "C") <= ($1::timestamptz, $2::text COLLATE "C")`, [state.offset.ts, state.offset.key ?? '']);
      expect(covered.rows.filter((x) => !inCloudWatch.has(x.key))).toEqual([]);
    }

    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    const cwKeys = cw.events('fanout', 's').map((e) => keyOf(e.message));
    const kinKeys = (await kinesis.consume('fanout')).map((r) => keyOf(r.data));
    const keyOfDoc = new Map([...source].map(([k, v]) => [v, k]));
    const fileKeys = listParts(path.join(dir, 'files')).flatMap(docsOfFile).map((d) => keyOfDoc.get(d) ?? 'unknown');
    for (const [name, keys] of [['cloudwatch', cwKeys], ['kinesis', kinKeys]] as const) {
      const cmp = compareKeys(source.keys(), keys);
      expect(cmp.missing, name).toEqual([]);
      expect(cmp.unexpected, name).toEqual([]);
      expect(cmp.duplicates, name).toBeLessThanOrEqual(2 * 4 * 100); // workers × concurrency × chunk
    }
    // Files are exactly-once whatever the other destinations did.
    expect(compareKeys(source.keys(), fileKeys)).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });
});
