import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient } from '@azure/storage-blob';
import { seedKestraLogs } from '../src/demo/seed.js';
import { loadConfigText } from '../src/config/load.js';
import type { ObjectStateConfig } from '../src/state/options.js';
import { createStateObjects } from '../src/state/object_backends.js';
import { ObjectStateStore } from '../src/state/object_store.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { azuriteConnectionString, startAzurite, startFakeGcs, startS3, type Running } from './helpers/object_servers.js';
import { startConditionalS3 } from './helpers/s3_conditional.js';

const BUCKET = 'statebucket';
let s3: Running;
let s3cond: Awaited<ReturnType<typeof startConditionalS3>>;
let azure: Running;
let gcs: Running;
let url: string;
let client: pg.Client;
let source: string[];

beforeAll(async () => {
  [s3, azure, gcs] = await Promise.all([startS3([BUCKET]), startAzurite(), startFakeGcs(['gstate'])]);
  s3cond = await startConditionalS3(s3.endpoint);
  await BlobServiceClient.fromConnectionString(azuriteConnectionString(azure.endpoint)).getContainerClient('state').create();
  ({ url, client } = await freshDatabase('object_state'));
  await seedKestraLogs(client, { rows: 6000, start: isoAgo(3700), spanSeconds: 3600 });
  source = await sourceDocs(client);
}, 120_000);
afterAll(async () => {
  await client?.end();
  await Promise.all([s3cond?.stop(), s3?.stop(), azure?.stop(), gcs?.stop()]);
});

const s3State = (prefix: string, extra: Record<string, unknown> = {}) => ({
  type: 's3', uri: `s3://${BUCKET}/${prefix}/`, endpoint: s3cond.endpoint, accessKeyId: 'S3RVER', secretKeyId: 'S3RVER', region: 'us-east-1', ...extra,
});
const gcsState = (prefix: string, extra: Record<string, unknown> = {}) => ({
  type: 'gcs', uri: `gs://gstate/${prefix}/`, endpoint: gcs.endpoint, projectId: 'test', ...extra,
});
const azureState = (prefix: string, extra: Record<string, unknown> = {}) => ({
  type: 'azure-blob', uri: `azure://state/${prefix}/`, connectionString: azuriteConnectionString(azure.endpoint), ...extra,
});

function setup(label: string, state: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const dir = tempDir(label);
  const out = path.join(dir, 'out');
  const cfg = writeConfig(dir, {
    source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: label, state,
    logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 400 }], ...extra,
  });
  return { dir, out, cfg };
}

const s3Admin = () => new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
async function s3Json(key: string): Promise<Record<string, unknown>> {
  const r = await s3Admin().send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return JSON.parse(await r.Body!.transformToString());
}
async function s3PutJson(key: string, value: unknown): Promise<void> {
  await s3Admin().send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: JSON.stringify(value) }));
}

function objectStateConfig(state: Record<string, unknown>): ObjectStateConfig {
  const c = loadConfigText(JSON.stringify({ source: { url }, state, logExporters: [{ id: 'f', type: 'file' }] }), { secrets: { env: {}, secretsDir: undefined } });
  return c.state as ObjectStateConfig;
}

describe.each([
  ['S3 (s3rver behind the conditional-write proxy)', 's3', s3State],
  ['Azure Blob (azurite)', 'azure', azureState],
  ['GCS (local JSON API server with generation preconditions)', 'gcs', gcsState],
] as const)('state in %s', (_name, tag, stateOf) => {
  it('exports everything, stores offset and manifest in one object, and counts its GETs and PUTs', async () => {
    const { dir, out, cfg } = setup(`full-${tag}`, stateOf(`full-${tag}`, { flushInterval: 'PT1H' }));
    const reportFile = path.join(dir, 'r.json');
    const r = await runCli(['run', '--config', cfg, '--report', reportFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(exportedDocs(out)).toEqual(source);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
    // 6 shards, flushInterval PT1H: lease + state read once; writes are lease, manifest,
    // end of run and lease release. Not one per shard.
    expect(report.stateRequests).toEqual({ get: 2, put: 4 });
    const st = JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout);
    expect(st.offset).toEqual(report.offsetAfter);
    expect(st.unfinishedRun).toBeNull();
    // The rerun starts from the stored offset (nothing new to export).
    const again = await runCli(['run', '--config', cfg]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('exported 0 rows');
  }, 120_000);

  it('two runs racing for one offsetKey: exactly one gets the lease', async () => {
    const config = objectStateConfig(stateOf(`race-${tag}`));
    const stores = await Promise.all(Array.from({ length: 4 }, async () => new ObjectStateStore(config, 'race', await createStateObjects(config))));
    const results = await Promise.allSettled(stores.map((s) => s.open()));
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    for (const x of results) if (x.status === 'rejected') expect(String(x.reason)).toMatch(/another logship run (took|\(host .*\) holds) the lease/);
    await stores[results.findIndex((x) => x.status === 'fulfilled')]!.close();
    // Released: the next run gets it at once.
    const next = new ObjectStateStore(config, 'race', await createStateObjects(config));
    await next.open();
    await next.close();
  });
});

describe('S3 state: leases and crashes', () => {
  it('refuses to run while another run holds an unexpired lease, and takes over an expired one', async () => {
    const { out, cfg } = setup('lease', s3State('lease'));
    await s3PutJson('lease/lease.lease.json', { owner: 'other', host: 'elsewhere', pid: 4242, expiresAt: Date.now() + 3_600_000 });
    const blocked = await runCli(['run', '--config', cfg]);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/^logship: offsetKey 'lease': another logship run \(host elsewhere, pid 4242\) holds the lease s3:\/\/statebucket\/lease\/lease\.lease\.json until .*; it is taken over once it expires\n$/);
    expect(exportedDocs(out)).toEqual([]);
    // The crashed holder's lease expired a second ago: taken over.
    await s3PutJson('lease/lease.lease.json', { owner: 'other', host: 'elsewhere', pid: 4242, expiresAt: Date.now() - 1000 });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(exportedDocs(out)).toEqual(source);
    expect((await s3Json('lease/lease.lease.json')).expiresAt).toBe(0); // released at exit
  }, 120_000);

  it('kill -9 between flushes, then a rerun after the lease expires: the multiset is exact', async () => {
    const { out, cfg } = setup('crash', s3State('crash', { flushInterval: 'PT0.3S', leaseDuration: 'PT3S' }));
    // Shards 2 and on wait before reading until the kill: the first two finish and show in the
    // state (flushed every 0.3 s), and the kill lands mid-run however fast or busy the machine.
    const { child, done } = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_STALL_FROM_SHARD: '2' } });
    // Kill once the state object shows some shards done (and so some finished since that flush).
    const until = Date.now() + 120_000;
    for (;;) {
      const st = await s3Json('crash/crash.state.json').catch(() => null);
      if ((st && Object.keys(st.done as object).length >= 2) || child.exitCode !== null || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (child.exitCode !== null) throw new Error(`the run ended before the kill: ${(await done).stderr}`);
    child.kill('SIGKILL');
    await done;
    const lease = await s3Json('crash/crash.lease.json');
    expect(lease.expiresAt).toBeGreaterThan(0); // the killed run could not release it
    // Wait out the lease the killed run left (its expiry is written in it, not guessed).
    await new Promise((r) => setTimeout(r, Math.max(0, (lease.expiresAt as number) - Date.now() + 200)));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\(resumed\)/);
    expect(exportedDocs(out)).toEqual(source);
  }, 180_000);
});
