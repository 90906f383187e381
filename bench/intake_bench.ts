// Shared driver of the JSON-intake platform benches (bench/platform_datadog.ts,
// bench/platform_newrelic.ts): seeds N Kestra rows into an embedded PostgreSQL, starts a local
// endpoint that drains each request and answers at once, runs the CLI as its own process with
// `workers: 1` and `--report`, and prints events/s and peak RSS. Never part of the tests.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { seedBenchDay } from './seed_day.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'bin/logship.cjs');

export interface IntakeBench {
  name: string;
  /** The answer the platform gives an accepted request. */
  status: number;
  answer: string;
  /** The exporter's options, given the endpoint's base URL. */
  exporter(baseUrl: string): Record<string, unknown>;
}

export async function runIntakeBench(b: IntakeBench): Promise<void> {
  const rows = Number(process.argv[2] ?? 200_000);
  // `file`: the same rows to a local NDJSON file, the read path's ceiling on this box at this moment.
  const variants = (process.argv[3] ?? 'file,gzip,none').split(',');
  const log = (s: string) => process.stderr.write(`${s}\n`);
  let requests = 0;
  let wireBytes = 0;
  const endpoint = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (wireBytes += c.length));
    req.on('end', () => {
      requests++;
      res.writeHead(b.status, { 'content-type': 'application/json' });
      res.end(b.answer);
    });
  });
  endpoint.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  const db = await startEmbeddedPostgres();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `logship-bench-${b.name}-`));
  try {
    await seedBenchDay(db.url, rows);
    for (const compression of variants) {
      requests = 0;
      wireBytes = 0;
      const cfg = path.join(work, `${compression}.yaml`);
      const report = path.join(work, `${compression}.json`);
      fs.writeFileSync(cfg, YAML.stringify({
        source: { url: db.url }, lookbackPeriod: 'P2D', workers: 1, offsetKey: `bench-${compression}`,
        logExporters: [compression === 'file'
          ? { id: b.name, type: 'file', directory: path.join(work, 'files'), compression: 'none' }
          : { id: b.name, ...b.exporter(base), compression, deadLetter: path.join(work, 'dead') }],
      }));
      const t0 = process.hrtime.bigint();
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), CLI, 'run', '--config', cfg, '--report', report], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOGSHIP_LOG_LEVEL: 'warn' } });
        child.on('close', resolve);
      });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) throw new Error(`${b.name} ${compression}: the run exited ${code}`);
      const rep = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; durationMs: number; peakRssBytes: number; cpuSeconds: number };
      const what = compression === 'file' ? 'reference: the same rows to an NDJSON file' : `${b.name}, compression=${compression}`;
      console.log(`| ${what}, workers=1 | ${rep.rows.toLocaleString('en-US')} | ${Math.round(rep.rows / (rep.durationMs / 1000)).toLocaleString('en-US')} events/s (${Math.round(rep.rows / seconds).toLocaleString('en-US')} with process start) | ${Math.round(rep.rows / rep.cpuSeconds).toLocaleString('en-US')} events per CPU-second | ${Math.round(rep.peakRssBytes / 1048576)} MiB | ${requests} requests, ${(wireBytes / 1e6).toFixed(1)} MB on the wire |`);
    }
  } finally {
    endpoint.close();
    await db.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
