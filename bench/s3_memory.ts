// `npm run bench:s3-memory`: uploads one object far larger than the S3 exporter's memory bound
// (partSize x (queueSize + 1)) through the real service, and reports the uploader's peak RSS.
// s3rver runs in this process; the upload runs in a child so its RSS is measured alone.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';

const MB = 1024 * 1024;
const [role, endpoint, sizeArg] = process.argv.slice(2);

async function upload(): Promise<void> {
  const { S3Service } = await import('../src/sinks/s3/service.js');
  const total = Number(sizeArg) * MB;
  const service = new S3Service({
    id: 'mem', type: 's3', bucket: 'mem', region: 'us-east-1', accessKeyId: 'S3RVER', secretKeyId: 'S3RVER', sessionToken: undefined,
    endpoint, forcePathStyle: true, partSize: 5 * MB, queueSize: 2, maxAttempts: 3,
    format: 'NDJSON', parquetCompression: 'NONE', rowGroupSize: 50_000, compression: 'none', compressionLevel: 0, maxLinesPerFile: 1e9, maxBytesPerFile: 1e12, logFilePrefix: 'm', keyTemplate: '{prefix}-{shard}-{part}.{ext}',
  });
  const baseline = process.memoryUsage().rss;
  const part = await service.open('big.ndjson', 'application/x-ndjson', undefined);
  const line = Buffer.from(`${JSON.stringify({ level: 'INFO', message: 'x'.repeat(400) })}\n`);
  const block = Buffer.concat(Array.from({ length: Math.ceil(MB / line.length) }, () => line));
  let peak = baseline;
  for (let sent = 0; sent < total; sent += block.length) {
    if (!part.sink.write(block)) await new Promise((r) => part.sink.once('drain', r));
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  part.finalMeta({ exporterId: 'mem', shardId: 's', rows: 0, minTs: '', maxTs: '', contentType: 'application/x-ndjson', contentEncoding: undefined });
  part.sink.end();
  await part.commit();
  process.stdout.write(`${JSON.stringify({ baselineRss: baseline, peakRss: Math.max(peak, process.resourceUsage().maxRSS * 1024) })}\n`);
}

async function main(): Promise<void> {
  const { default: S3rver } = await import('s3rver');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-s3mem-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'mem', configs: [] }] });
  const { port } = (await server.run()) as net.AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const sizeMb = Number(process.argv[2] ?? 400);
  try {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'upload', url, String(sizeMb)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((r) => child.on('close', r));
    const r = JSON.parse(out) as { baselineRss: number; peakRss: number };
    const head = await new S3Client({ endpoint: url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }).send(new HeadObjectCommand({ Bucket: 'mem', Key: 'big.ndjson' }));
    const bound = 5 * (2 + 1);
    process.stdout.write(`uploaded ${(head.ContentLength! / MB).toFixed(0)} MiB with partSize 5 MiB, queueSize 2 (bound ${bound} MiB of buffered parts)\n`);
    process.stdout.write(`uploader RSS: ${(r.baselineRss / MB).toFixed(0)} MiB before, ${(r.peakRss / MB).toFixed(0)} MiB peak (+${((r.peakRss - r.baselineRss) / MB).toFixed(0)} MiB for a ${sizeMb} MiB object)\n`);
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(role === 'upload' ? upload() : main()).then(() => process.exit(0), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
