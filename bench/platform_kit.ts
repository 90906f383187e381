// Shared driver of the platform throughput benches (bench/platform_<name>.ts): seeds N Kestra rows
// into an embedded PostgreSQL, starts an endpoint that answers every request at once, runs the
// CLI as its own process with workers: 1 and --report, and prints events/s, events per CPU-second
// of the logship process (steadier than wall time on a shared machine) and peak RSS.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { seedBenchDay } from './seed_day.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'bin/logship.cjs');

export interface PlatformBench {
  name: string;
  /** The answer to every request: status, headers, body. */
  answer: (req: http.IncomingMessage) => { status: number; headers: Record<string, string>; body: string | Buffer };
  /** The exporter config for one variant, given the endpoint's base URL. */
  exporter: (baseUrl: string, variant: string) => Record<string, unknown>;
  variants: string[];
}

export async function benchPlatform(b: PlatformBench): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, chunk: { type: 'string', default: '1000' }, variants: { type: 'string' } } });
  const variants = values.variants ? values.variants.split(',') : b.variants;
  const rows = Number(values.rows);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const endpoint = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = b.answer(req);
      res.writeHead(a.status, a.headers);
      res.end(a.body);
    });
  });
  endpoint.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  const baseUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  const pgServer = await startEmbeddedPostgres();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `logship-bench-${b.name}-`));
  try {
    await seedBenchDay(pgServer.url, rows);
    const lines = [`${b.name}: ${rows.toLocaleString('en-US')} rows, workers 1, chunk ${values.chunk}, Node ${process.version}, ${os.cpus().length} cores`, '', '| variant | events/s | events per CPU-second | peak RSS | bytes sent |', '|---|---:|---:|---:|---:|'];
    for (const variant of variants) {
      const cfg = path.join(work, `${variant.replace(/\W+/g, '_')}.yaml`);
      const report = path.join(work, `${variant.replace(/\W+/g, '_')}.json`);
      fs.writeFileSync(cfg, YAML.stringify({
        source: { url: pgServer.url }, lookbackPeriod: 'P2D', workers: 1, offsetKey: `bench-${b.name}-${variant}`,
        logExporters: [{ id: b.name, chunk: Number(values.chunk), deadLetter: path.join(work, 'dead'), ...b.exporter(baseUrl, variant) }],
      }));
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'run', '--config', cfg, '--report', report], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOGSHIP_LOG_LEVEL: 'warn' } });
        child.on('close', resolve);
      });
      if (code !== 0) throw new Error(`${variant}: logship exited ${code}`);
      const rep = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; durationMs: number; peakRssBytes: number; cpuSeconds: number; exporters: Record<string, { rows: number; bytes: number }> };
      const delivered = rep.exporters[b.name]!.rows;
      if (delivered !== rows) throw new Error(`${variant}: delivered ${delivered} of ${rows} rows`);
      const line = `| ${variant} | ${Math.round((delivered / rep.durationMs) * 1000).toLocaleString('en-US')} | ${Math.round(delivered / rep.cpuSeconds).toLocaleString('en-US')} | ${Math.round(rep.peakRssBytes / 2 ** 20)} MiB | ${(rep.exporters[b.name]!.bytes / 1e6).toFixed(1)} MB |`;
      log(line);
      lines.push(line);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    endpoint.closeAllConnections();
    endpoint.close();
    await pgServer.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
