// `node dist/bench/platform_google_logging.js [--rows N]`: logship → a local Cloud Logging REST
// endpoint (`/v2/entries:write`) that answers 200 at once, through the official client, workers: 1.
// Prints events/s and peak RSS (from the run's report). Never part of the tests.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';
import { packageRoot } from '../src/util/paths.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, chunk: { type: 'string', default: '1000' } } });

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const pgServer = await startEmbeddedPostgres({ fsyncOff: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-gcl-'));
  let writes = 0;
  let bytes = 0;
  const endpoint = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      writes++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  try {
    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    await createKestraSchema(client);
    await seedKestraLogsParallel(pgServer.url, { rows, start: new Date(Date.now() - 23 * 3600_000).toISOString(), spanSeconds: 23 * 3600 - 120, parallel: 2 });
    await client.query('VACUUM ANALYZE logs');
    await client.end();
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = JSON.stringify({ type: 'service_account', client_email: 'bench@bench-project.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
    const cfg = path.join(work, 'gcl.yaml');
    const report = path.join(work, 'gcl.json');
    fs.writeFileSync(cfg, YAML.stringify({
      source: { url: pgServer.url, stream: 'copy', fetchSize: 5000 }, lookbackPeriod: 'P1D', offsetKey: 'bench-gcl', workers: 1,
      logExporters: [{ id: 'gcl', type: 'google-logging', projectId: 'bench-project', serviceAccount: key, endpoint: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`, chunk: Number(values.chunk), deadLetter: path.join(work, 'dead') }],
    }));
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [path.join(packageRoot(), 'dist/src/cli/main.js'), 'run', '--config', cfg, '--report', report], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, METADATA_SERVER_DETECTION: 'none' } });
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`logship exited ${code}`);
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; durationMs: number; peakRssBytes: number };
    console.log(`google-logging: ${r.rows} events in ${(r.durationMs / 1000).toFixed(2)} s = ${Math.round(r.rows / (r.durationMs / 1000)).toLocaleString('en-US')} events/s, peak RSS ${Math.round(r.peakRssBytes / 2 ** 20)} MiB, ${writes} writes, ${(bytes / 2 ** 20).toFixed(1)} MiB on the wire`);
  } finally {
    endpoint.close();
    await pgServer.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
