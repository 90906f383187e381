import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { PermanentExportError } from '../src/core/errors.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows, failureOf } from './helpers/in_process.js';
import { CloudWatchServer } from './helpers/platforms/cloudwatch_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * CloudWatch Logs' rules (groups and streams, 1 MB and 24 h per call, the time window, STS), in
 * process against the CloudWatch fake. The delivery contract (faults, a wrong key, an unreachable
 * endpoint, a crash) is test/contract's; exit codes, the offset and kill -9 are
 * test/delivery_e2e.test.ts's. CloudWatch's age rules follow the wall clock: rows are built relative to now.
 */

const env = { AWS_ACCESS_KEY_ID: 'AKIDLOGSHIPTEST', AWS_SECRET_KEY_ID: 'test-secret-key', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
let server: CloudWatchServer;

beforeAll(async () => {
  server = await new CloudWatchServer().start();
});
afterAll(() => server.stop());
afterEach(() => {
  server.assertFaultsDelivered();
  server.now = () => Date.now();
});

/** Six hours of rows up to a minute ago. */
const recentRows = (n = 1500): TestRow[] => kestraRows(n, { startMs: Date.now() - 6 * 3600_000, stepMs: Math.floor((6 * 3600_000 - 120_000) / Math.ceil(n / 3)) });

let n = 0;
function config(extra: Record<string, unknown> = {}) {
  const group = `kestra-${++n}`;
  const deadLetter = path.join(tempDir('cw'), 'dead');
  return {
    group, deadLetter,
    config: exporterConfig({
      id: 'cw', type: 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', region: 'us-east-1', endpointOverride: server.url,
      accessKeyId: env.AWS_ACCESS_KEY_ID, secretKeyId: env.AWS_SECRET_KEY_ID, logGroupName: group, logStreamName: 'production',
      chunk: 200, concurrency: 2, deadLetter, minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
    }),
  };
}

/** The keys CloudWatch stored, checking each message is the source document plus its key, at its time. */
function storedKeys(group: string, rows: TestRow[]): string[] {
  const byKey = new Map(rows.map((r) => [r.key, r.doc]));
  return server.events(group, 'production').map((e) => {
    const doc = JSON.parse(e.message) as Record<string, unknown>;
    const key = doc.logship_key as string;
    delete doc.logship_key;
    expect(doc).toEqual(byKey.get(key));
    expect(e.timestamp).toBe(Math.floor(Date.parse(doc.timestamp as string)));
    return key;
  });
}
const putCalls = (group: string) => server.requests.filter((q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents') && q.body.includes(`"logGroupName":"${group}"`))
  .map((q) => (JSON.parse(q.body.toString()) as { logEvents: { timestamp: number; message: string }[] }).logEvents);

describe('cloudwatch exporter', () => {
  it('creates the missing group and stream and delivers every row exactly once, each call sorted and within the limits', async () => {
    const rows = recentRows();
    const { config: c, group } = config();
    expect((await exportRows(c, rows)).rows).toBe(rows.length);
    expect(compareKeys(rows.map((r) => r.key), storedKeys(group, rows))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    // Calls of at most `chunk` events, each in time order (the server rejects disorder and > 24 h spans).
    expect(putCalls(group).every((events) => events.length <= 200)).toBe(true);
  });

  it('splits calls at 1,048,576 bytes counting 26 bytes per event, and at 24 hours', async () => {
    // 40 rows of ~100 KiB messages 31 hours ago: ten fit a call by message bytes alone; the 26-byte overhead must be counted too.
    const big: TestRow[] = kestraRows(40, { startMs: Date.now() - 31 * 3600_000, stepMs: 3000, seed: 11 }).map((r) => ({ ...r, doc: { ...r.doc, namespace: 'company.big', message: 'x'.repeat(104_800) } }));
    const rows = [...big, ...recentRows(600)];
    const { config: c, group } = config({ chunk: 10_000, concurrency: 1 });
    await exportRows(c, rows);
    expect(compareKeys(rows.map((r) => r.key), storedKeys(group, rows))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const calls = putCalls(group);
    for (const events of calls) {
      expect(events.reduce((s, e) => s + Buffer.byteLength(e.message) + 26, 0)).toBeLessThanOrEqual(1_048_576);
      expect(events.at(-1)!.timestamp - events[0]!.timestamp).toBeLessThan(86_400_000);
    }
    // The 31-hour-old big rows and the recent rows cannot share a call.
    expect(calls.some((events) => events.some((e) => e.message.includes('"company.big"')) && events.some((e) => !e.message.includes('"company.big"')))).toBe(false);
  });

  it('dead-letters events CloudWatch rejects as too old or too new, and counts them', async () => {
    const rows = recentRows();
    // The server's clock is 14 days minus 1 hour ahead: rows older than 1 h are now "too old".
    const ahead = 14 * 86_400_000 - 3600_000;
    server.now = () => Date.now() + ahead;
    const old = config();
    const result = await exportRows(old.config, rows);
    const cutoff = Date.now() + ahead - 14 * 86_400_000;
    const expectedOld = rows.filter((r) => r.tsMicros / 1000 < cutoff - 60_000).length;
    const dead = deadLetterRecords(old.deadLetter) as { key: string; reason: string; document: Record<string, unknown> }[];
    expect(dead.length).toBeGreaterThanOrEqual(expectedOld);
    expect(new Set(dead.map((d) => d.reason))).toEqual(new Set(['rejected by CloudWatch Logs: too old (more than 14 days before the time of the call)']));
    expect(result.deadLettered).toBe(dead.length);
    // Nothing lost: every row is stored or dead-lettered, once.
    expect(compareKeys(rows.map((r) => r.key), [...storedKeys(old.group, rows), ...dead.map((d) => d.key)])).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(dead[0]!.document.logship_key).toBe(dead[0]!.key);

    server.now = () => Date.now() - 3 * 3600_000; // now the newest rows are more than 2 h ahead
    const fresh = config();
    expect((await exportRows(fresh.config, rows)).deadLettered).toBeGreaterThan(0);
    const dead2 = deadLetterRecords(fresh.deadLetter) as { reason: string }[];
    expect(dead2.length).toBeGreaterThan(0);
    expect(dead2.every((d) => d.reason === 'rejected by CloudWatch Logs: too new (more than 2 hours after the time of the call)')).toBe(true);
  });

  it('dead-letters an event over 1,048,550 bytes instead of sending it', async () => {
    const rows = recentRows(300);
    rows[100]!.doc.message = 'y'.repeat(1_100_000);
    const { config: c, group, deadLetter } = config();
    expect(await exportRows(c, rows)).toMatchObject({ rows: 299, deadLettered: 1 });
    const lines = deadLetterRecords(deadLetter) as { key: string; reason: string }[];
    expect(lines.map((l) => l.key)).toEqual([rows[100]!.key]);
    expect(lines[0]!.reason).toMatch(/^the message is 1100\d{3} bytes; CloudWatch Logs accepts at most 1048550 bytes per event/);
    expect(compareKeys(rows.filter((_, i) => i !== 100).map((r) => r.key), storedKeys(group, rows))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('an unknown access key fails at once (UnrecognizedClientException), naming the exporter', async () => {
    const failure = await failureOf(exportRows(config({ accessKeyId: 'AKIDUNKNOWN' }).config, recentRows(10)));
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect(failure.message).toMatch(/^cloudwatch exporter 'cw' .*: UnrecognizedClientException: The security token included in the request is invalid\. \(check accessKeyId/);
  });

  it('a missing group with createLogGroup: false fails before any row is sent', async () => {
    const { config: c, group } = config({ createLogGroup: false });
    const failure = await failureOf(exportRows(c, recentRows(10)));
    expect(failure).toEqual(new PermanentExportError(`cloudwatch exporter 'cw' (${group}/production, ${server.url}): log group ${group} does not exist (createLogGroup is false)`));
    expect(putCalls(group)).toEqual([]);
  });

  it('roleArn: assumes the role through STS AssumeRole and signs PutLogEvents with the temporary credentials', async () => {
    const rows = recentRows(300);
    const { config: c, group } = config({ roleArn: 'arn:aws:iam::123456789012:role/logship-writer' });
    process.env.AWS_ENDPOINT_URL_STS = server.url;
    try {
      await exportRows(c, rows);
    } finally {
      delete process.env.AWS_ENDPOINT_URL_STS;
    }
    expect(server.assumedRoles).toContain('arn:aws:iam::123456789012:role/logship-writer');
    const puts = server.requests.filter((q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents') && q.body.includes(`"logGroupName":"${group}"`));
    expect(puts.length).toBeGreaterThan(0);
    expect(puts.every((q) => /Credential=ASIATEMP\d+\//.test(String(q.headers.authorization)) && String(q.headers['x-amz-security-token']).startsWith('session-token-'))).toBe(true);
    expect(compareKeys(rows.map((r) => r.key), storedKeys(group, rows))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });
});

describe('cloudwatch exporter: plan', () => {
  let url: string;
  let client: pg.Client;
  beforeAll(async () => {
    ({ url, client } = await freshDatabase('cloudwatch'));
    await seedKestraLogs(client, { rows: 200, start: isoAgo(6 * 3600), spanSeconds: 6 * 3600 - 120 });
  });
  afterAll(() => client.end());

  function config(extra: Record<string, unknown>, top: Record<string, unknown>) {
    const dir = tempDir('cw-plan');
    const group = `kestra-plan-${++n}`;
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `cw-${n}`, ...top,
      logExporters: [{
        id: 'cw', type: 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', region: 'us-east-1', endpointOverride: server.url,
        accessKeyId: "{{ secret('AWS_ACCESS_KEY_ID') }}", secretKeyId: "{{ secret('AWS_SECRET_KEY_ID') }}", logGroupName: group, logStreamName: 'production', ...extra,
      }],
    });
    return { file, group };
  }

  it('plan warns when the window reaches past 14 days or past the log group retention', async () => {
    const old = config({}, { lookbackPeriod: 'P20D' });
    server.groups.set(old.group, { creationTime: Date.now(), retentionInDays: 3, streams: new Map() });
    const r = await runCli(['plan', '--config', old.file], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^warning: cloudwatch exporter 'cw': the window starts 20\.0 days ago; CloudWatch Logs rejects events more than 14 days old, so older rows would be dead-lettered$/m);
    expect(r.stdout).toContain(`warning: cloudwatch exporter 'cw': the window starts 20.0 days ago; log group ${old.group} keeps 3 days, so older rows would be rejected as expired and dead-lettered`);

    const recent = config({}, { lookbackPeriod: 'P2D' });
    server.groups.set(recent.group, { creationTime: Date.now(), retentionInDays: 3, streams: new Map() });
    const ok = await runCli(['plan', '--config', recent.file, '--json'], { env });
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { warnings: string[] }).warnings).toEqual([]);
  });

});
