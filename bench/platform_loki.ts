// `node dist/bench/platform_loki.js [--rows N] [--protocol protobuf|json]`: logship → a local
// Loki push endpoint that answers 204 at once, workers: 1. Prints events/s and peak RSS (from
// the run's report). Never part of the tests.
import { spawn } from 'node:child_process';
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

const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, protocol: { type: 'string', default: 'protobuf,json' }, chunk: { type: 'string', default: '1000' } } });

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const pgServer = await startEmbeddedPostgres({ fsyncOff: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-loki-'));
  let pushes = 0;
  let bytes = 0;
  const endpoint = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      pushes++;
      res.writeHead(204);
      res.end();
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
    for (const protocol of values.protocol!.split(',')) {
      pushes = 0;
      bytes = 0;
      const cfg = path.join(work, `${protocol}.yaml`);
      const report = path.join(work, `${protocol}.json`);
      fs.writeFileSync(cfg, YAML.stringify({
        source: { url: pgServer.url, stream: 'copy', fetchSize: 5000 }, lookbackPeriod: 'P1D', offsetKey: `bench-loki-${protocol}`, workers: 1,
        logExporters: [{ id: 'loki', type: 'loki', url: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`, protocol, chunk: Number(values.chunk), deadLetter: path.join(work, 'dead') }],
      }));
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [path.join(packageRoot(), 'dist/src/cli/main.js'), 'run', '--config', cfg, '--report', report], { stdio: ['ignore', 'ignore', 'inherit'] });
        child.on('close', resolve);
      });
      if (code !== 0) throw new Error(`logship exited ${code}`);
      const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; durationMs: number; peakRssBytes: number };
      console.log(`loki ${protocol}: ${r.rows} events in ${(r.durationMs / 1000).toFixed(2)} s = ${Math.round(r.rows / (r.durationMs / 1000)).toLocaleString('en-US')} events/s, peak RSS ${Math.round(r.peakRssBytes / 2 ** 20)} MiB, ${pushes} pushes, ${(bytes / 2 ** 20).toFixed(1)} MiB on the wire`);
    }
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
