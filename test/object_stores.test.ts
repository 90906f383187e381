import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Storage } from '@google-cloud/storage';
import { BlobServiceClient } from '@azure/storage-blob';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { killWhen } from './helpers/wait.js';
import { PermanentExportError } from '../src/core/errors.js';
import { createExporter } from '../src/sinks/registry.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { failureOf } from './helpers/in_process.js';
import { azuriteConnectionString, startAzurite, startFakeGcs, startFaultProxy, startS3, type Running } from './helpers/object_servers.js';

const BUCKET = 'logbucket';
const s3creds = { accessKeyId: 'S3RVER', secretKeyId: 'S3RVER', region: 'us-east-1' };
let s3: Running;
let gcs: Awaited<ReturnType<typeof startFakeGcs>>;
let azure: Running;
let url: string;
let client: pg.Client;
let source: string[];

beforeAll(async () => {
  [s3, gcs, azure] = await Promise.all([startS3([BUCKET, 'other']), startFakeGcs([BUCKET]), startAzurite()]);
  const az = BlobServiceClient.fromConnectionString(azuriteConnectionString(azure.endpoint));
  await az.getContainerClient('logs').create();
  ({ url, client } = await freshDatabase('objects'));
  // Three event-time hours, so hourly keys really partition.
  // 4500 rows: 3 shards of rowsPerShard 2000 on two workers, each written to every store a test names.
  await seedKestraLogs(client, { rows: 4500, start: isoAgo(3 * 3600 + 300), spanSeconds: 3 * 3600 });
  source = await sourceDocs(client);
});
// A failure the shared fake GCS was told to inject and never answered must not leak into the next test.
afterEach(() => gcs?.assertFaultsDelivered());
afterAll(async () => {
  await client?.end();
  await Promise.all([s3?.stop(), gcs?.stop(), azure?.stop()]);
});

function s3Client(endpoint = s3.endpoint): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
}

async function s3Objects(prefix: string, bucket = BUCKET) {
  const c = s3Client();
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.NextContinuationToken;
  } while (token);
  const out = [];
  for (const Key of keys.sort()) {
    const obj = await c.send(new GetObjectCommand({ Bucket: bucket, Key }));
    const raw = Buffer.from(await obj.Body!.transformToByteArray());
    out.push({ key: Key, raw, obj, docs: gunzipLines(raw) });
  }
  return out;
}

function gunzipLines(raw: Buffer): string[] {
  return zlib.gunzipSync(raw).toString('utf8').split('\n').filter(Boolean);
}

function config(dir: string, exporters: unknown[], extra: Record<string, unknown> = {}) {
  return writeConfig(dir, { source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 2000, logExporters: exporters, ...extra }, `${Math.random().toString(36).slice(2)}.yaml`);
}

/** The exporter's pre-run check, as the run makes it, which must fail. */
async function checkFailure(exporter: Record<string, unknown>): Promise<Error> {
  const e = await createExporter(exporterConfig(exporter));
  try {
    return await failureOf(e.check());
  } finally {
    await e.close();
  }
}

/** Each test gets its own offsetKey so every run exports the whole seeded window. */
let key = 0;
const offsetKey = () => `objects-${++key}`;

describe('S3 (s3rver, read back through the AWS SDK)', () => {
  it('writes event-time partitioned objects with metadata, and the multiset matches the source', async () => {
    const dir = tempDir('s3');
    const cfg = config(dir, [{ id: 's3', type: 's3', bucket: BUCKET, endpoint: s3.endpoint, ...s3creds, logFilePrefix: 'kestra/logs', maxLinesPerFile: 750 }], { offsetKey: offsetKey() });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.stderr).toBe(r.stderr.split('\n').filter((l) => !l.includes('"level":50')).join('\n'));
    expect(r.code).toBe(0);
    const objects = await s3Objects('kestra/logs/');
    expect(objects.flatMap((o) => o.docs).sort()).toEqual(source);
    for (const o of objects) {
      expect(o.key).toMatch(/^kestra\/logs\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/kestra\/logs-\d{8}T\d{6}Z-[0-9a-f]{8}-\d{5}\.ndjson\.gz$/);
      // Event time, not upload time: every row's timestamp is in the key's hour.
      const [, date, hour] = /dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})/.exec(o.key)!;
      for (const d of o.docs) expect(JSON.parse(d).timestamp.slice(0, 13)).toBe(`${date}T${hour}`);
      expect(o.obj.ContentType).toBe('application/x-ndjson');
      expect(o.obj.ContentEncoding).toBe('gzip');
      expect(o.obj.Metadata).toMatchObject({ 'logship-exporter': 's3', 'logship-rows': String(o.docs.length) });
      const times = o.docs.map((d) => JSON.parse(d).timestamp as string).sort();
      expect(o.obj.Metadata!['logship-min-timestamp']).toBe(times[0]);
      expect(o.obj.Metadata!['logship-max-timestamp']).toBe(times.at(-1));
    }
  });

  it('streams a >10 MB object as a multipart upload, metadata included', async () => {
    const { url: bigUrl, client: big } = await freshDatabase('s3_big');
    await big.query(`INSERT INTO logs (key, value) SELECT 'b' || g, jsonb_build_object('namespace','n','flowId','f','level','INFO',
      'timestamp', to_char(now() - interval '10 minutes' + g * interval '1 ms', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'message', repeat(md5(g::text), 40)) FROM generate_series(1, 24000) g`);
    const dir = tempDir('s3-big');
    const proxy = await startFaultProxy(s3.endpoint); // failing nothing: it records the requests
    const cfg = writeConfig(dir, {
      source: { url: bigUrl }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 12000, // two shards of ~15 MB
      logExporters: [{ id: 's3', type: 's3', bucket: 'other', endpoint: proxy.endpoint, ...s3creds, compression: 'none', maxLinesPerFile: 1000000, partSize: '5MiB', queueSize: 2, keyTemplate: '{prefix}-{shard}-{part}.{ext}' }],
    });
    const r = await runCli(['run', '--config', cfg]);
    await proxy.stop();
    expect(r.code).toBe(0);
    expect(proxy.requests.filter((q) => /^POST .*\?uploads=?$/.test(q))).toHaveLength(2); // CreateMultipartUpload
    expect(proxy.requests.filter((q) => /partNumber=3/.test(q)).length).toBe(2); // three or more parts each
    const c = s3Client();
    const list = await c.send(new ListObjectsV2Command({ Bucket: 'other' }));
    expect(list.Contents!.length).toBe(2);
    let rows = 0;
    for (const o of list.Contents!) {
      expect(o.Size!).toBeGreaterThan(10 * 1024 * 1024);
      const head = await c.send(new HeadObjectCommand({ Bucket: 'other', Key: o.Key! }));
      rows += Number(head.Metadata!['logship-rows']);
    }
    expect(rows).toBe(24000);
    await big.end();
  });

  /**
   * Runs an S3 export through a fault proxy: `before` failures from the start (the health check),
   * then `storm` failures after three requests went through (the health check and two uploads),
   * i.e. while uploads are under way. Counted in requests, not time, so it never misses the run.
   */
  async function exportThroughFaults(prefix: string, maxAttempts: number, before: number, storm: number) {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const cfg = config(tempDir(`s3-${prefix}`), [{ id: 's3', type: 's3', bucket: BUCKET, endpoint: proxy.endpoint, ...s3creds, logFilePrefix: prefix, maxAttempts }], { offsetKey: offsetKey(), workers: 1 });
      proxy.failNext(before);
      proxy.failNext(storm, 503, 3);
      const r = await runCli(['run', '--config', cfg]);
      proxy.assertFaultsDelivered();
      return { r, failed: proxy.failedSoFar(), docs: (await s3Objects(`${prefix}/`)).flatMap((o) => o.docs).sort() };
    } finally {
      await proxy.stop();
    }
  }

  it('loses nothing while the server answers 503 for a while', async () => {
    // One failure rides through the health check on an SDK retry; then a storm that can outlast
    // a request's 3 SDK attempts, where shard retries take over.
    const { r, failed, docs } = await exportThroughFaults('storm', 3, 1, 7);
    expect(r.code).toBe(0);
    expect(failed).toBe(8);
    expect(docs).toEqual(source);
  });

  it('retries a whole shard when a request fails past the SDK attempts', async () => {
    // maxAttempts 1: no SDK retry, so any injected failure fails a shard attempt.
    const { r, failed, docs } = await exportThroughFaults('shardretry', 1, 0, 2);
    expect(r.code).toBe(0);
    expect(failed).toBe(2);
    expect(r.stderr.match(/shard failed; retrying it/g)?.length).toBeGreaterThanOrEqual(1);
    expect(docs).toEqual(source);
  });

  it('fails fast with one line on bad credentials and on a missing bucket (the pre-run check, in process)', async () => {
    const bad = await checkFailure({ id: 'arch', type: 's3', bucket: BUCKET, endpoint: s3.endpoint, region: 'us-east-1', accessKeyId: 'NOT-A-KEY', secretKeyId: 'wrong-secret-value' });
    expect(bad).toBeInstanceOf(PermanentExportError);
    expect(bad.message).toMatch(/^s3 exporter 'arch' \(bucket logbucket\): cannot use the bucket: HTTP 403 .*\(credentials rejected or not allowed\)$/);
    expect(bad.message).not.toContain('wrong-secret-value');
    const missing = await checkFailure({ id: 'arch', type: 's3', bucket: 'no-such-bucket', endpoint: s3.endpoint, ...s3creds });
    expect(missing).toBeInstanceOf(PermanentExportError);
    expect(missing.message).toMatch(/^s3 exporter 'arch' \(bucket no-such-bucket\): cannot use the bucket: HTTP 404 .*\(bucket no-such-bucket does not exist\)$/);
  });

  it('a kill -9 in the middle of uploads, then a rerun, leaves exactly one copy of each row', async () => {
    const dir = tempDir('s3-kill');
    const cfg = config(dir, [{ id: 's3', type: 's3', bucket: BUCKET, endpoint: s3.endpoint, ...s3creds, logFilePrefix: 'killed', maxLinesPerFile: 200 }], { offsetKey: offsetKey(), source: { url, fetchSize: 150 } });
    await killWhen(startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '50' } }), '6 objects uploaded', async () => (await s3Objects('killed/')).length >= 6);
    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('(resumed)');
    const docs = (await s3Objects('killed/')).flatMap((o) => o.docs).sort();
    expect(docs).toEqual(source);
  });
});

describe('GCS (a local JSON-API server, through @google-cloud/storage)', () => {
  const storage = () => new Storage({ apiEndpoint: gcs.endpoint, projectId: 'test' });

  it('uploads resumably with metadata and reads back the source multiset, through 503s', async () => {
    const dir = tempDir('gcs');
    const cfg = config(dir, [{ id: 'gcs', type: 'gcs', bucket: BUCKET, projectId: 'test', endpoint: gcs.endpoint, logFilePrefix: 'g', chunkSize: '256KiB' }], { offsetKey: offsetKey(), rowsPerShard: 1000 });
    // The bucket check and the first upload's start go through; the next four requests (upload
    // chunks, retries) get 503s.
    const failedBefore = gcs.failedSoFar();
    gcs.failNext(4, 503, 2);
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(0);
    gcs.assertFaultsDelivered();
    expect(gcs.failedSoFar() - failedBefore).toBe(4);
    const [files] = await storage().bucket(BUCKET).getFiles({ prefix: 'g/' });
    expect(files.length).toBeGreaterThan(3);
    const docs: string[] = [];
    for (const f of files) {
      const [raw] = await f.download({ decompress: false } as never);
      const lines = gunzipLines(raw);
      docs.push(...lines);
      const [meta] = await f.getMetadata();
      expect(meta.contentType).toBe('application/x-ndjson');
      expect(meta.contentEncoding).toBe('gzip');
      expect(meta.metadata).toMatchObject({ 'logship-exporter': 'gcs', 'logship-rows': String(lines.length) });
    }
    expect(docs.sort()).toEqual(source);
  });

  it('names a missing bucket in one line (the pre-run check, in process)', async () => {
    const failure = await checkFailure({ id: 'gcs', type: 'gcs', bucket: 'nope', endpoint: gcs.endpoint });
    expect(failure).toEqual(new PermanentExportError("gcs exporter 'gcs' (bucket nope): bucket nope does not exist"));
  });

});

describe('Azure Blob (azurite, through @azure/storage-blob)', () => {
  it('commits block blobs with metadata and reads back the source multiset', async () => {
    const dir = tempDir('azure');
    const cfg = config(dir, [{ id: 'az', type: 'azure-blob', containerName: 'logs', connectionString: "{{ secret('AZ_CONN') }}", logFilePrefix: 'a', format: 'JSON' }], { offsetKey: offsetKey() });
    const r = await runCli(['run', '--config', cfg], { env: { AZ_CONN: azuriteConnectionString(azure.endpoint) } });
    expect(r.code).toBe(0);
    const container = BlobServiceClient.fromConnectionString(azuriteConnectionString(azure.endpoint)).getContainerClient('logs');
    const docs: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: 'a/', includeMetadata: true })) {
      expect(b.name).toMatch(/\.json\.gz$/);
      const raw = await container.getBlockBlobClient(b.name).downloadToBuffer();
      const elements = (JSON.parse(zlib.gunzipSync(raw).toString('utf8')) as unknown[]).map((d) => JSON.stringify(d));
      docs.push(...elements);
      expect(b.properties.contentType).toBe('application/json');
      expect(b.properties.contentEncoding).toBe('gzip');
      expect(b.metadata).toMatchObject({ logship_exporter: 'az', logship_rows: String(elements.length) });
    }
    expect(docs.sort()).toEqual(source.map((d) => JSON.stringify(JSON.parse(d))).sort());
  });

  it('names a missing container in one line (the pre-run check, in process)', async () => {
    const failure = await checkFailure({ id: 'az', type: 'azure-blob', containerName: 'nope', connectionString: azuriteConnectionString(azure.endpoint) });
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect(failure.message).toMatch(/^azure-blob exporter 'az' \(container nope\): cannot use the container: HTTP 404 ContainerNotFound \(container nope does not exist\)$/);
  });

});

describe('Parquet to object stores', () => {
  const keysOf = async (raw: Buffer) => (await parquetReadObjects({ file: new Uint8Array(raw).buffer, compressors, columns: ['key'] })).map((r) => r.key as string);
  const sourceKeys = async () => (await client.query<{ key: string }>('SELECT key FROM logs')).rows.map((r) => r.key).sort();

  it('uploads Parquet objects to S3 and Azure that read back to the source keys', async () => {
    const dir = tempDir('pq-objects');
    const cfg = config(dir, [
      { id: 's3', type: 's3', bucket: BUCKET, endpoint: s3.endpoint, ...s3creds, logFilePrefix: 'pq', format: 'PARQUET' },
      { id: 'az', type: 'azure-blob', containerName: 'logs', connectionString: azuriteConnectionString(azure.endpoint), logFilePrefix: 'pq', format: 'PARQUET', parquetCompression: 'SNAPPY' },
    ], { offsetKey: offsetKey() });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const c = s3Client();
    const list = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'pq/' }));
    const s3keys: string[] = [];
    for (const o of list.Contents ?? []) {
      expect(o.Key).toMatch(/\.parquet$/);
      const obj = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key! }));
      expect(obj.ContentType).toBe('application/vnd.apache.parquet');
      expect(obj.ContentEncoding).toBeUndefined();
      s3keys.push(...(await keysOf(Buffer.from(await obj.Body!.transformToByteArray()))));
    }
    expect(s3keys.sort()).toEqual(await sourceKeys());
    const container = BlobServiceClient.fromConnectionString(azuriteConnectionString(azure.endpoint)).getContainerClient('logs');
    const azkeys: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: 'pq/' })) azkeys.push(...(await keysOf(await container.getBlockBlobClient(b.name).downloadToBuffer())));
    expect(azkeys.sort()).toEqual(await sourceKeys());
  });
});

describe('fan-out', () => {
  it('one run writes files, S3, GCS and Azure, reading each shard once', async () => {
    const dir = tempDir('fanout4');
    const cfg = config(dir, [
      { id: 'files', type: 'file', directory: path.join(dir, 'out') },
      { id: 's3', type: 's3', bucket: BUCKET, endpoint: s3.endpoint, ...s3creds, logFilePrefix: 'fan' },
      { id: 'gcs', type: 'gcs', bucket: BUCKET, endpoint: gcs.endpoint, logFilePrefix: 'fan' },
      { id: 'az', type: 'azure-blob', containerName: 'logs', connectionString: azuriteConnectionString(azure.endpoint), logFilePrefix: 'fan' },
    ], { offsetKey: offsetKey(), source: { url } });
    const r = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'r.json')]);
    expect(r.code).toBe(0);
    expect(exportedDocs(path.join(dir, 'out'))).toEqual(source);
    expect((await s3Objects('fan/')).flatMap((o) => o.docs).sort()).toEqual(source);
    const [gfiles] = await new Storage({ apiEndpoint: gcs.endpoint, projectId: 't' }).bucket(BUCKET).getFiles({ prefix: 'fan/' });
    const gdocs = (await Promise.all(gfiles.map(async (f) => gunzipLines((await f.download())[0])))).flat();
    expect(gdocs.sort()).toEqual(source);
    const container = BlobServiceClient.fromConnectionString(azuriteConnectionString(azure.endpoint)).getContainerClient('logs');
    const adocs: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: 'fan/' })) adocs.push(...gunzipLines(await container.getBlockBlobClient(b.name).downloadToBuffer()));
    expect(adocs.sort()).toEqual(source);
  });
});
