// `npm run bench -- --distributed [--workers-processes 1,2,3] [--threads 1] [--rows 1000000]`:
// distributed mode's scaling on this machine. For each process count N, the same seeded data is
// exported once by a local `run` with N × threads worker threads and once by `run --distributed`
// with N `logship worker` processes of `threads` threads each (started beforehand and idle, as a
// standing pool would be). Reported: rows/s of both and the queue's overhead, the distributed
// run's time over the local one's minus one, pair by pair (median over --pairs).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { seedBenchDay } from './seed_day.js';
import { packageRoot } from '../src/util/paths.js';

const CLI = path.join(packageRoot(), 'dist/src/cli/main.js');

interface Timed { seconds: number; code: number | null; stdout: string; stderr: string }

function runCli(args: string[]): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOGSHIP_LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, code, stdout, stderr }));
  });
}

function startWorker(config: string, threads: number): { child: ChildProcess; ready: Promise<void>; done: Promise<void> } {
  const child = spawn(process.execPath, [CLI, 'worker', '--config', config, '--concurrency', String(threads)], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOGSHIP_LOG_LEVEL: 'info' },
  });
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      log += d;
      if (log.includes('waiting for shard jobs')) resolve();
    });
    child.on('close', (code) => reject(new Error(`worker exited (${code}) before it was ready: ${log.slice(-500)}`)));
  });
  const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return { child, ready, done };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function distributedBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      distributed: { type: 'boolean' },
      rows: { type: 'string', default: '1000000' },
      'workers-processes': { type: 'string', default: '1,2,3' },
      threads: { type: 'string', default: '1' },
      pairs: { type: 'string', default: '1' },
      'poll-interval': { type: 'string', default: 'PT2S' },
      url: { type: 'string' },
      out: { type: 'string', default: 'bench/results_distributed.md' },
    },
  });
  const rows = Number(values.rows);
  const threads = Math.max(1, Number(values.threads));
  const counts = values['workers-processes']!.split(',').map((x) => Math.max(1, Number(x.trim())));
  const pairs = Math.max(1, Number(values.pairs));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const server = values.url ? null : await startEmbeddedPostgres();
  const url = values.url ?? server!.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-dist-'));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    if (!values.url) await seedBenchDay(url, rows);
    // The same shards for every contender: four a thread at the largest count, so idle threads pull work.
    const rowsPerShard = Math.max(1000, Math.ceil(rows / (Math.max(...counts) * threads * 4)));
    let n = 0;
    const configFor = (workers: number, label: string, distributed: boolean) => {
      n++;
      const file = path.join(work, `${label}-${n}.yaml`);
      fs.writeFileSync(file, YAML.stringify({
        source: { url }, lookbackPeriod: 'P1D', workers, rowsPerShard, offsetKey: `bench-${label}-${n}`,
        state: { type: 'postgres', table: 'bench_state' },
        ...(distributed ? { queue: { shardTimeout: 'PT30M', pollInterval: values['poll-interval'] } } : {}),
        logExporters: [{ id: 'files', type: 'file', directory: path.join(work, `out-${label}-${n}`), compression: 'gzip', compressionLevel: 1 }],
      }));
      return file;
    };
    const exported = (r: Timed) => Number((r.stdout.match(/([\d,]+) rows/) ?? ['', '0'])[1]!.replace(/,/g, ''));
    const lines: string[] = [];
    lines.push(`# Distributed mode scaling (${new Date().toISOString()})`, '');
    lines.push(`${rows.toLocaleString('en-US')} rows, rowsPerShard ${rowsPerShard}, ${threads} thread(s) a worker process, queue.pollInterval ${values['poll-interval']}, ${os.cpus().length} cores, ${pairs} pair(s), median shown.`, '');
    lines.push('| worker processes | threads in all | local rows/s | distributed rows/s | queue overhead |', '|---:|---:|---:|---:|---:|');
    for (const count of counts) {
      const total = count * threads;
      const local: number[] = [];
      const dist: number[] = [];
      for (let p = 0; p < pairs; p++) {
        const l = await runCli(['run', '--config', configFor(total, 'local', false)]);
        if (l.code !== 0 || exported(l) !== rows) throw new Error(`local run failed or incomplete (exit ${l.code}): ${l.stderr.slice(-500)}`);
        local.push(l.seconds);
        const cfg = configFor(total, 'dist', true);
        const workers = Array.from({ length: count }, () => startWorker(cfg, threads));
        await Promise.all(workers.map((w) => w.ready));
        const d = await runCli(['run', '--config', cfg, '--distributed']);
        for (const w of workers) w.child.kill('SIGTERM');
        await Promise.all(workers.map((w) => w.done));
        if (d.code !== 0 || exported(d) !== rows) throw new Error(`distributed run failed or incomplete (exit ${d.code}): ${d.stderr.slice(-500)}`);
        dist.push(d.seconds);
        log(`${count} process(es): local ${l.seconds.toFixed(2)} s, distributed ${d.seconds.toFixed(2)} s`);
      }
      const overheads = local.map((l, i) => dist[i]! / l - 1);
      const rate = (s: number) => Math.round(rows / s).toLocaleString('en-US');
      lines.push(`| ${count} | ${total} | ${rate(median(local))} | ${rate(median(dist))} | ${(median(overheads) * 100).toFixed(1)} % |`);
    }
    lines.push('', 'Times are whole processes (start, plan, export, finalize); the distributed one also includes enqueueing and the coordinator noticing the last shard (up to one poll interval). Worker start-up is not counted (a standing pool).');
    const md = `${lines.join('\n')}\n`;
    process.stdout.write(md);
    fs.mkdirSync(path.dirname(path.resolve(values.out!)), { recursive: true });
    fs.writeFileSync(values.out!, md);
  } finally {
    await client.end().catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
    await server?.stop();
  }
}
