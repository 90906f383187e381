import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { compareKeys } from './helpers/delivery_check.js';
import { killWhen } from './helpers/wait.js';
import { CloudWatchServer, cloudWatchError } from './helpers/platforms/cloudwatch_server.js';

// CloudWatch's age rules follow the wall clock, so the data is built relative to now.
const ROWS = 1500;
let url: string;
let client: pg.Client;
/** key -> value text */
let source: Map<string, string>;
let server: CloudWatchServer;

const env = { AWS_ACCESS_KEY_ID: 'AKIDLOGSHIPTEST', AWS_SECRET_KEY_ID: 'test-secret-key', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

beforeAll(async () => {
  ({ url, client } = await freshDatabase('cloudwatch'));
  await seedKestraLogs(client, { rows: ROWS, start: isoAgo(6 * 3600), spanSeconds: 6 * 3600 - 120 });
  const r = await client.query<{ key: string; v: string }>('SELECT key, value::text AS v FROM logs');
  source = new Map(r.rows.map((x) => [x.key, x.v]));
  server = await new CloudWatchServer().start();
});
afterAll(async () => {
  await server.stop();
  await client.end();
});
afterEach(() => {
  server.assertFaultsDelivered();
  server.now = () => Date.now();
});

let n = 0;
function config(extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('cw');
  const group = `kestra-${++n}`;
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `cw-${n}`, ...top,
    logExporters: [{
      id: 'cw', type: 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', region: 'us-east-1', endpointOverride: server.url,
      accessKeyId: "{{ secret('AWS_ACCESS_KEY_ID') }}", secretKeyId: "{{ secret('AWS_SECRET_KEY_ID') }}",
      logGroupName: group, logStreamName: 'production', chunk: 200, concurrency: 2, deadLetter: path.join(dir, 'dead'),
      minBackoff: 'PT0.01S', maxBackoff: 'PT0.05S', ...extra,
    }],
  });
  return { dir, file, group };
}

/** The keys CloudWatch stored, checking each message is the source document plus its key. */
function storedKeys(group: string, stream = 'production'): string[] {
  return server.events(group, stream).map((e) => {
    const doc = JSON.parse(e.message) as Record<string, unknown>;
    const key = doc.logship_key as string;
    delete doc.logship_key;
    expect(doc).toEqual(JSON.parse(source.get(key)!));
    expect(e.timestamp).toBe(Math.floor(Date.parse(doc.timestamp as string)));
    return key;
  });
}

/** Extra Kestra rows (the table's other columns are generated from the document). */
async function insertRows(rows: { key: string; at: number; message: string; namespace?: string }[]): Promise<void> {
  const docs = rows.map((r) => JSON.stringify({ tenantId: 'main', namespace: r.namespace ?? 'company.team', flowId: 'f', taskId: 't', executionId: 'e', taskRunId: 'tr', attemptNumber: 0, thread: 'th', level: 'INFO', message: r.message, timestamp: new Date(r.at).toISOString(), executionKind: 'NORMAL' }));
  await client.query('INSERT INTO logs (key, value) SELECT * FROM unnest($1::text[], $2::jsonb[])', [rows.map((r) => r.key), docs]);
}

async function storedOffset(file: string): Promise<unknown> {
  const r = await runCli(['state', '--config', file, '--json'], { env });
  return (JSON.parse(r.stdout) as { offset: unknown }).offset;
}

describe('cloudwatch exporter', () => {
  it('creates the missing group and stream and delivers every row exactly once, each call sorted and within the limits', async () => {
    const { file, group } = config();
    const r = await runCli(['run', '--config', file], { env });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const cmp = compareKeys(source.keys(), storedKeys(group));
    expect(cmp).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    // Calls of at most `chunk` events, each in time order (the server rejects disorder and > 24 h spans).
    expect(server.events(group, 'production').length).toBe(ROWS);
    expect(server.requests.filter((q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents')).every((q) => (JSON.parse(q.body.toString()) as { logEvents: unknown[] }).logEvents.length <= 200)).toBe(true);
  });

  it('retries ThrottlingException, ServiceUnavailableException and a reset connection, and loses nothing', async () => {
    const { file, group } = config();
    const isPut = (q: { headers: Record<string, unknown> }) => String(q.headers['x-amz-target']).endsWith('PutLogEvents');
    server.failNext([
      cloudWatchError('ThrottlingException', 'Rate exceeded'),
      cloudWatchError('ServiceUnavailableException', 'The service is unavailable. Please try again shortly.', 503),
      { reset: true },
      cloudWatchError('ThrottlingException', 'Rate exceeded'),
    ], isPut);
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(0);
    expect(compareKeys(source.keys(), storedKeys(group))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('splits calls at 1,048,576 bytes counting 26 bytes per event, and at 24 hours', async () => {
    const { file, group } = config({ chunk: 10_000, concurrency: 1 }, { lookbackPeriod: 'P2D' });
    // 40 rows of ~100 KiB messages: ten fit a call by message bytes alone; the 26-byte overhead must be counted too.
    const big = 'x'.repeat(104_800);
    await insertRows(Array.from({ length: 40 }, (_, g) => ({ key: `big-${String(g).padStart(3, '0')}`, at: Date.now() - 31 * 3600_000 + g * 1000, message: big, namespace: 'company.big' })));
    try {
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      const all = await client.query<{ key: string }>('SELECT key FROM logs');
      expect(compareKeys(all.rows.map((x) => x.key), server.events(group, 'production').map((e) => (JSON.parse(e.message) as { logship_key: string }).logship_key))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
      const calls = server.requests.filter((q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents') && q.body.includes(`"logGroupName":"${group}"`))
        .map((q) => (JSON.parse(q.body.toString()) as { logEvents: { timestamp: number; message: string }[] }).logEvents);
      for (const events of calls) {
        expect(events.reduce((s, e) => s + Buffer.byteLength(e.message) + 26, 0)).toBeLessThanOrEqual(1_048_576);
        expect(events.at(-1)!.timestamp - events[0]!.timestamp).toBeLessThan(86_400_000);
      }
      // The 31-hour-old big rows and the recent rows cannot share a call.
      expect(calls.some((events) => events.some((e) => e.message.includes('"company.big"')) && events.some((e) => !e.message.includes('"company.big"')))).toBe(false);
    } finally {
      await client.query("DELETE FROM logs WHERE key LIKE 'big-%'");
    }
  });

  it('dead-letters events CloudWatch rejects as too old or too new, counts them and exits 3', async () => {
    // The server's clock is 14 days minus 1 hour ahead: rows older than 1 h are now "too old".
    const ahead = 14 * 86_400_000 - 3600_000;
    server.now = () => Date.now() + ahead;
    const { dir, file, group } = config();
    const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
    expect(r.code).toBe(3);
    const cutoff = Date.now() + ahead - 14 * 86_400_000;
    const expectedOld = [...source.values()].filter((v) => Date.parse(JSON.parse(v).timestamp) < cutoff - 60_000).length;
    const dead = fs.readdirSync(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; reason: string; document: Record<string, unknown> }));
    expect(dead.length).toBeGreaterThanOrEqual(expectedOld);
    expect(new Set(dead.map((d) => d.reason))).toEqual(new Set(['rejected by CloudWatch Logs: too old (more than 14 days before the time of the call)']));
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.cw.deadLettered).toBe(dead.length);
    // Nothing lost: every row is stored or dead-lettered, once.
    expect(compareKeys(source.keys(), [...storedKeys(group), ...dead.map((d) => d.key)])).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(dead[0]!.document.logship_key).toBe(dead[0]!.key);

    server.now = () => Date.now() - 3 * 3600_000; // now the newest rows are more than 2 h ahead
    const again = config();
    const r2 = await runCli(['run', '--config', again.file], { env });
    expect(r2.code).toBe(3);
    const dead2 = fs.readdirSync(path.join(again.dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(again.dir, 'dead', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { reason: string }));
    expect(dead2.length).toBeGreaterThan(0);
    expect(dead2.every((d) => d.reason === 'rejected by CloudWatch Logs: too new (more than 2 hours after the time of the call)')).toBe(true);
  });

  it('dead-letters an event over 1,048,550 bytes instead of sending it, and exits 0 with allowDeadLetter', async () => {
    const { dir, file, group } = config({ allowDeadLetter: true });
    await insertRows([{ key: 'huge-1', at: Date.now() - 2 * 3600_000, message: 'y'.repeat(1_100_000) }]);
    try {
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(0);
      const lines = fs.readdirSync(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(path.join(dir, 'dead', f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; reason: string }));
      expect(lines.map((l) => l.key)).toEqual(['huge-1']);
      expect(lines[0]!.reason).toMatch(/^the message is 1100\d{3} bytes; CloudWatch Logs accepts at most 1048550 bytes per event/);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.cw.deadLettered).toBe(1);
      expect(compareKeys(source.keys(), storedKeys(group))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    } finally {
      await client.query("DELETE FROM logs WHERE key = 'huge-1'");
    }
  });

  it('a kill -9 mid-run, then a rerun: 0 missing and duplicates within workers × concurrency × chunk', async () => {
    const workers = 2, concurrency = 2, chunk = 50;
    const { file, group } = config({ chunk, concurrency }, { workers, source: { url, fetchSize: 50 } });
    const run = startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '60' } });
    await killWhen(run, '450 events in CloudWatch', () => server.events(group, 'production').length >= 450);
    const before = server.events(group, 'production').length;
    expect(before).toBeLessThan(ROWS);
    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('(resumed)');
    const cmp = compareKeys(source.keys(), storedKeys(group));
    expect(cmp.missing).toEqual([]);
    expect(cmp.unexpected).toEqual([]);
    expect(cmp.duplicates).toBeLessThanOrEqual(workers * concurrency * chunk);
    console.log(`cloudwatch kill -9: ${before} events stored before the kill, ${cmp.duplicates} duplicates after the rerun (bound ${workers * concurrency * chunk})`);
  });

  it('a wrong secret key: one line naming the exporter, exit 1, offset unmoved', async () => {
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env: { ...env, AWS_SECRET_KEY_ID: 'wrong-secret-key' } });
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^logship: cloudwatch exporter 'cw' \(kestra-\d+\/production, http:\/\/127\.0\.0\.1:\d+\): cannot describe log group kestra-\d+: InvalidSignatureException: The request signature we calculated does not match/);
    expect(last).toContain('(check accessKeyId/secretKeyId, sessionToken or roleArn)');
    expect(r.stderr).not.toContain('wrong-secret-key');
    expect(await storedOffset(file)).toBeNull();
  });

  it('an unknown access key fails the same way (UnrecognizedClientException)', async () => {
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env: { ...env, AWS_ACCESS_KEY_ID: 'AKIDUNKNOWN' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: cloudwatch exporter 'cw' .*: UnrecognizedClientException: The security token included in the request is invalid\. \(check accessKeyId/);
  });

  it('an unreachable endpoint is retried maxAttempts times, then fails with one line, exit 1', async () => {
    const { file } = config({ endpointOverride: 'http://127.0.0.1:9', maxAttempts: 3 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: cloudwatch exporter 'cw' \(kestra-\d+\/production, http:\/\/127\.0\.0\.1:9\): cannot describe log group kestra-\d+: .*ECONNREFUSED.*; gave up after 3 attempts$/);
    expect(await storedOffset(file)).toBeNull();
  });

  it('a missing group with createLogGroup: false fails before any row is read', async () => {
    const { file, group } = config({ createLogGroup: false });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: cloudwatch exporter 'cw' (${group}/production, ${server.url}): log group ${group} does not exist (createLogGroup is false)`);
    expect(await storedOffset(file)).toBeNull();
  });

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

  it('roleArn: assumes the role through STS AssumeRole and signs PutLogEvents with the temporary credentials', async () => {
    const { file, group } = config({ roleArn: 'arn:aws:iam::123456789012:role/logship-writer' });
    const r = await runCli(['run', '--config', file], { env: { ...env, AWS_ENDPOINT_URL_STS: server.url } });
    expect(r.code).toBe(0);
    expect(server.assumedRoles).toContain('arn:aws:iam::123456789012:role/logship-writer');
    const puts = server.requests.filter((q) => String(q.headers['x-amz-target']).endsWith('PutLogEvents') && q.body.includes(`"logGroupName":"${group}"`));
    expect(puts.length).toBeGreaterThan(0);
    expect(puts.every((q) => /Credential=ASIATEMP\d+\//.test(String(q.headers.authorization)) && String(q.headers['x-amz-security-token']).startsWith('session-token-'))).toBe(true);
    expect(compareKeys(source.keys(), storedKeys(group))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });
});
