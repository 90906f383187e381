import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRC32C } from '@google-cloud/storage';
import S3rver from 's3rver';
import { freePort } from '../../src/demo/embedded_pg.js';

export interface Running { endpoint: string; stop(): Promise<void> }

/** What a fake server was told to inject, so a test can require that all of it happened. */
export interface FaultInjection {
  /** Lets `pass` requests through, then answers `status` to the `n` after them. Calls queue up. */
  failNext(n: number, status?: number, pass?: number): void;
  /** Failures answered so far. */
  failedSoFar(): number;
  /** Throws if a failure a test asked for was never answered (it would leak into the next test). */
  assertFaultsDelivered(): void;
}

/** The queue of injected failures behind FaultInjection; `take()` decides one request. */
function faultQueue(server: string): FaultInjection & { take(): number | undefined } {
  const queue: { pass: number; fail: number; status: number }[] = [];
  let failed = 0;
  return {
    failNext(n, status = 503, pass = 0) {
      if (n > 0) queue.push({ pass, fail: n, status });
    },
    failedSoFar: () => failed,
    assertFaultsDelivered() {
      const pending = queue.reduce((sum, f) => sum + f.fail, 0);
      queue.length = 0;
      if (pending > 0) throw new Error(`${server}: ${pending} injected failure(s) were never delivered; the test did not exercise what it set up`);
    },
    take() {
      const head = queue[0];
      if (!head) return undefined;
      if (head.pass > 0) {
        head.pass--;
        return undefined;
      }
      head.fail--;
      failed++;
      if (head.fail <= 0) queue.shift();
      return head.status;
    },
  };
}

/** s3rver: an S3-compatible server (multipart included) on a free port. */
export async function startS3(buckets: string[]): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name, configs: [] })) });
  const { port } = (await server.run()) as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function azuriteConnectionString(endpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint}/${AZURITE_ACCOUNT};`;
}

/** azurite's blob service, run from the npm package as a child process. */
export async function startAzurite(): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-azurite-'));
  const port = await freePort();
  const main = fileURLToPath(new URL('../../node_modules/azurite/dist/src/blob/main.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--skipApiVersionCheck', '--disableTelemetry', '--silent', '--loose'], { stdio: 'ignore' });
  await waitForPort(port);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listening on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface GcsObject { name: string; data: Buffer; contentType?: string; contentEncoding?: string; metadata: Record<string, string>; generation: number }

/**
 * A local server for the GCS JSON API endpoints @google-cloud/storage uses here: bucket get,
 * resumable uploads (init, chunked PUT with 308 and Range, final PUT), multipart uploads, object
 * get/patch/list/delete and media download, with crc32c and md5Hash as the client validates them,
 * and the generation preconditions (`ifGenerationMatch`, 0 = must not exist; `generation` on
 * reads) with GCS's 412 conditionNotMet. No GCS emulator installs offline (the firebase one needs
 * Java 21).
 */
export async function startFakeGcs(buckets: string[]): Promise<Running & FaultInjection & { objects: Map<string, GcsObject> }> {
  const objects = new Map<string, GcsObject>();
  const uploads = new Map<string, { bucket: string; name: string; meta: Record<string, unknown>; chunks: Buffer[]; received: number }>();
  const faults = faultQueue('fake GCS');
  let generation = 1;
  let base = '';

  const resource = (bucket: string, o: GcsObject) => {
    const crc = new CRC32C();
    crc.update(o.data);
    return {
      kind: 'storage#object', id: `${bucket}/${o.name}/${o.generation}`, name: o.name, bucket, generation: String(o.generation), metageneration: '1',
      contentType: o.contentType, contentEncoding: o.contentEncoding, size: String(o.data.length),
      md5Hash: createHash('md5').update(o.data).digest('base64'), crc32c: crc.toString(), metadata: o.metadata,
      timeCreated: new Date().toISOString(), updated: new Date().toISOString(),
    };
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const readBody = (req: http.IncomingMessage) => new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });

  /** GCS's answer when ifGenerationMatch does not hold (0: the object must not exist yet). */
  const preconditionFails = (url: URL, key: string): boolean => {
    const want = url.searchParams.get('ifGenerationMatch');
    if (want === null) return false;
    const current = objects.get(key)?.generation ?? 0;
    return Number(want) !== current;
  };
  const conditionNotMet = (res: http.ServerResponse) => json(res, 412, {
    error: { code: 412, message: 'At least one of the pre-conditions you specified did not hold.', errors: [{ domain: 'global', reason: 'conditionNotMet', message: 'At least one of the pre-conditions you specified did not hold.', locationType: 'header', location: 'If-Match' }] },
  });
  /** multipart/related: a JSON metadata part, then the media part. */
  const multipartParts = (contentType: string, body: Buffer): Buffer[] => {
    const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
    if (!boundary) return [];
    const delimiter = Buffer.from(`--${boundary}`);
    const parts: Buffer[] = [];
    let at = body.indexOf(delimiter);
    while (at >= 0) {
      const next = body.indexOf(delimiter, at + delimiter.length);
      if (next < 0) break;
      const part = body.subarray(at + delimiter.length, next);
      const headerEnd = part.indexOf('\r\n\r\n');
      // The part's bytes end before the CRLF that precedes the next delimiter.
      if (headerEnd >= 0) parts.push(part.subarray(headerEnd + 4, part.length - 2));
      at = next;
    }
    return parts;
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url!, base);
    // Reached through STORAGE_EMULATOR_HOST, the client uses that variable as the JSON API's base
    // URL itself, so bucket and object calls come without /storage/v1; emulators such as
    // fake-gcs-server serve both forms.
    if (url.pathname.startsWith('/b/')) url.pathname = `/storage/v1${url.pathname}`;
    const body = await readBody(req);
    const failStatus = req.method === 'GET' && /^\/storage\/v1\/b\/[^/]+$/.test(url.pathname) ? undefined : faults.take();
    if (failStatus !== undefined) return json(res, failStatus, { error: { code: failStatus, message: 'injected failure' } });
    let m: RegExpMatchArray | null;
    if (req.method === 'GET' && (m = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)$/))) {
      return buckets.includes(m[1]!) ? json(res, 200, { kind: 'storage#bucket', name: m[1] }) : json(res, 404, { error: { code: 404, message: 'The specified bucket does not exist.' } });
    }
    if ((m = url.pathname.match(/^\/upload\/storage\/v1\/b\/([^/]+)\/o$/))) {
      const bucket = m[1]!;
      if (!buckets.includes(bucket)) return json(res, 404, { error: { code: 404, message: 'The specified bucket does not exist.' } });
      if (req.method === 'POST' && url.searchParams.get('uploadType') === 'multipart') {
        const [metaPart, media] = multipartParts(String(req.headers['content-type'] ?? ''), body);
        if (!metaPart || !media) return json(res, 400, { error: { code: 400, message: 'Invalid multipart request' } });
        const meta = JSON.parse(metaPart.toString()) as { name?: string; contentType?: string; contentEncoding?: string; metadata?: Record<string, string> };
        const name = String(url.searchParams.get('name') ?? meta.name);
        if (preconditionFails(url, `${bucket}/${name}`)) return conditionNotMet(res);
        const obj: GcsObject = { name, data: Buffer.from(media), contentType: meta.contentType, contentEncoding: meta.contentEncoding, metadata: meta.metadata ?? {}, generation: generation++ };
        objects.set(`${bucket}/${name}`, obj);
        return json(res, 200, resource(bucket, obj));
      }
      if (req.method === 'POST' && url.searchParams.get('uploadType') === 'resumable') {
        const meta = body.length ? (JSON.parse(body.toString()) as Record<string, unknown>) : {};
        // The client sends the object's content type as a header, as the real API allows.
        meta.contentType ??= req.headers['x-upload-content-type'];
        const id = randomUUID();
        uploads.set(id, { bucket, name: String(url.searchParams.get('name') ?? meta.name), meta, chunks: [], received: 0 });
        res.writeHead(200, { location: `${base}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&upload_id=${id}` });
        return res.end();
      }
      if (req.method === 'PUT') {
        const up = uploads.get(url.searchParams.get('upload_id') ?? '');
        if (!up) return json(res, 404, { error: { code: 404, message: 'no such upload' } });
        const range = /bytes (\*|(\d+)-(\d+))\/(\*|\d+)/.exec(String(req.headers['content-range'] ?? ''));
        if (range && range[2] !== undefined) {
          const start = Number(range[2]);
          // A retried chunk may overlap what we have: keep only the new bytes.
          if (start <= up.received) {
            const fresh = body.subarray(up.received - start);
            up.chunks.push(fresh);
            up.received += fresh.length;
          }
        } else if (!range && body.length) {
          up.chunks.push(body);
          up.received += body.length;
        }
        const total = range ? range[4] : String(up.received);
        if (total === '*') {
          res.writeHead(308, up.received > 0 ? { range: `bytes=0-${up.received - 1}` } : {});
          return res.end();
        }
        uploads.delete(url.searchParams.get('upload_id')!);
        const meta = up.meta as { contentType?: string; contentEncoding?: string; metadata?: Record<string, string> };
        const obj: GcsObject = { name: up.name, data: Buffer.concat(up.chunks), contentType: meta.contentType, contentEncoding: meta.contentEncoding, metadata: meta.metadata ?? {}, generation: generation++ };
        objects.set(`${up.bucket}/${obj.name}`, obj);
        return json(res, 200, resource(up.bucket, obj));
      }
    }
    if ((m = url.pathname.match(/^\/(?:download\/)?storage\/v1\/b\/([^/]+)\/o\/(.+)$/))) {
      const key = `${m[1]}/${decodeURIComponent(m[2]!)}`;
      const obj = objects.get(key);
      // Without object versioning only the live generation exists.
      const wanted = url.searchParams.get('generation');
      if (!obj || (wanted !== null && Number(wanted) !== obj.generation)) return json(res, 404, { error: { code: 404, message: 'No such object' } });
      if (req.method !== 'GET' && preconditionFails(url, key)) return conditionNotMet(res);
      if (req.method === 'DELETE') {
        objects.delete(key);
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'PATCH') {
        const patch = JSON.parse(body.toString()) as { metadata?: Record<string, string> };
        obj.metadata = { ...obj.metadata, ...patch.metadata };
        return json(res, 200, resource(m[1]!, obj));
      }
      if (url.searchParams.get('alt') === 'media') {
        const r = resource(m[1]!, obj);
        res.writeHead(200, { 'content-type': obj.contentType ?? 'application/octet-stream', 'x-goog-hash': `crc32c=${r.crc32c},md5=${r.md5Hash}`, 'x-goog-stored-content-encoding': obj.contentEncoding ?? 'identity' });
        return res.end(obj.data);
      }
      return json(res, 200, resource(m[1]!, obj));
    }
    if (req.method === 'GET' && (m = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)\/o$/))) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const items = [...objects.entries()].filter(([k]) => k.startsWith(`${m![1]}/${prefix}`)).map(([, o]) => resource(m![1]!, o));
      return json(res, 200, { kind: 'storage#objects', items });
    }
    json(res, 400, { error: { code: 400, message: `fake GCS does not implement ${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    endpoint: base,
    objects,
    failNext: faults.failNext,
    failedSoFar: faults.failedSoFar,
    assertFaultsDelivered: faults.assertFaultsDelivered,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** An HTTP proxy that answers injected failures (FaultInjection) and forwards everything else. */
export async function startFaultProxy(target: string): Promise<Running & FaultInjection & { requests: string[] }> {
  const faults = faultQueue('fault proxy');
  const requests: string[] = [];
  const t = new URL(target);
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const status = faults.take();
    if (status !== undefined) {
      req.resume();
      res.writeHead(status, { 'content-type': 'application/xml' });
      return res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>injected</Message></Error>`);
    }
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    failNext: faults.failNext,
    failedSoFar: faults.failedSoFar,
    assertFaultsDelivered: faults.assertFaultsDelivered,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
