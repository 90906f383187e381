// Shared driver of the AWS platform benches (platform_cloudwatch.ts, platform_kinesis.ts): seeds
// N Kestra rows into an embedded PostgreSQL, starts a fast local endpoint that answers at once,
// runs the CLI as a separate process with workers: 1 and --report, and prints events/s and peak RSS.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';
import { packageRoot } from '../src/core/paths.js';

export interface FastEndpoint {
  /** Answers one request (the AWS JSON 1.1 target and body); counts what it accepted. */
  answer(target: string, body: Buffer): string;
  accepted(): number;
}

/** How many times `needle` occurs in `hay`: counting events without parsing the JSON. */
export function occurrences(hay: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

export async function runPlatformBench(name: string, endpoint: FastEndpoint, exporter: (url: string) => Record<string, unknown>): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, chunk: { type: 'string' }, url: { type: 'string' } } });
  const rows = Number(values.rows);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(endpoint.answer(String(req.headers['x-amz-target'] ?? ''), Buffer.concat(chunks)));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpointUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const pgServer = values.url ? null : await startEmbeddedPostgres();
  const url = values.url ?? pgServer!.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `logship-bench-${name}-`));
  try {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await createKestraSchema(client);
    log(`seeding ${rows.toLocaleString('en-US')} Kestra rows...`);
    // Within the last 6 hours: CloudWatch takes events up to 14 days old and calls spanning < 24 h.
    await seedKestraLogsParallel(url, { rows, start: new Date(Date.now() - 6 * 3600_000).toISOString(), spanSeconds: 6 * 3600 - 120, parallel: 2 });
    await client.query('VACUUM ANALYZE logs');
    await client.end();
    const e = exporter(endpointUrl);
    if (values.chunk) e.chunk = Number(values.chunk);
    const config = path.join(work, 'logship.yaml');
    fs.writeFileSync(config, YAML.stringify({
      source: { url }, lookbackPeriod: 'P1D', workers: 1, offsetKey: `bench-${name}`, state: { type: 'file', path: path.join(work, 'state.json') },
      logExporters: [{ id: name, deadLetter: path.join(work, 'dead'), ...e }],
    }));
    const report = path.join(work, 'report.json');
    const cli = path.join(packageRoot(), 'bin', 'logship.cjs');
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [cli, 'run', '--config', config, '--report', report], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', LOGSHIP_LOG_LEVEL: 'warn' } });
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`logship run exited ${code}`);
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; durationMs: number; peakRssBytes: number; planningMs: number; cpuSeconds: number };
    const eventsPerSec = Math.round((r.rows / r.durationMs) * 1000);
    process.stdout.write(`${name}: ${r.rows.toLocaleString('en-US')} events in ${(r.durationMs / 1000).toFixed(1)} s = ${eventsPerSec.toLocaleString('en-US')} events/s, peak RSS ${Math.round(r.peakRssBytes / 1048576)} MiB, ${r.cpuSeconds} s CPU in logship = ${Math.round(r.rows / r.cpuSeconds).toLocaleString('en-US')} events per CPU-second, load average ${os.loadavg()[0]!.toFixed(1)} (workers 1, chunk ${String(e.chunk ?? 'default')}; endpoint accepted ${endpoint.accepted().toLocaleString('en-US')})\n`);
  } finally {
    server.close();
    server.closeAllConnections();
    await pgServer?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
