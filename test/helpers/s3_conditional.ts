import http from 'node:http';
import type net from 'node:net';
import type { Running } from './object_servers.js';

/**
 * s3rver (3.x) ignores If-None-Match and If-Match on PutObject; S3 has honoured both since 2024.
 * This proxy in front of it enforces them as S3 does: the check and the write run under one
 * per-key lock (so two racing conditional writes cannot both pass), a failed condition answers
 * 412 with S3's PreconditionFailed XML, and If-Match on a missing key answers 404 NoSuchKey.
 * Everything else passes through untouched; the official AWS SDK is what talks to it.
 */
export async function startConditionalS3(target: string): Promise<Running & { conditionalPuts(): number; refused(): number }> {
  const t = new URL(target);
  const locks = new Map<string, Promise<void>>();
  let conditional = 0;
  let refused = 0;

  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) =>
    new Promise<void>((resolve) => {
      const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
        r.on('end', resolve);
      });
      up.on('error', () => {
        res.destroy();
        resolve();
      });
      up.end(body);
    });

  const currentEtag = (path: string) =>
    new Promise<string | null>((resolve, reject) => {
      const head = http.request({ host: t.hostname, port: t.port, method: 'HEAD', path }, (r) => {
        r.resume();
        resolve(r.statusCode === 200 ? String(r.headers.etag) : r.statusCode === 404 ? null : null);
      });
      head.on('error', reject);
      head.end();
    });

  const fail = (res: http.ServerResponse, status: number, code: string, message: string) => {
    refused++;
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>proxy</RequestId></Error>`);
  };

  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(parts);
      const url = new URL(req.url!, 'http://x');
      const ifNoneMatch = req.headers['if-none-match'];
      const ifMatch = req.headers['if-match'];
      const isPutObject = req.method === 'PUT' && !url.searchParams.has('uploadId') && !req.headers['x-amz-copy-source'];
      if (!isPutObject || (ifNoneMatch === undefined && ifMatch === undefined)) return forward(req, body, res);
      conditional++;
      const key = url.pathname;
      const previous = locks.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      locks.set(key, previous.then(() => mine));
      await previous;
      try {
        const etag = await currentEtag(key);
        if (ifNoneMatch === '*' && etag !== null) return fail(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        if (ifMatch !== undefined && etag === null) return fail(res, 404, 'NoSuchKey', 'The specified key does not exist.');
        if (ifMatch !== undefined && ifMatch !== etag) return fail(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        await forward(req, body, res);
      } finally {
        release();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    conditionalPuts: () => conditional,
    refused: () => refused,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
