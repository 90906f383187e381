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
import { packageRoot } from '../src/core/paths.js';

const CLI = path.join(packageRoot(), 'bin/logship.cjs');

interface Timed { seconds: number; code: number | null; stdout: string; stderr: string }

function runCli(args: string[], logLevel = 'warn'): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOGSHIP_LOG_LEVEL: logLevel } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, code, stdout, stderr }));
  });
}

function startWorker(config: string, threads: number): { child: ChildProcess; ready: Promise<void>; done: Promise<string> } {
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
  const done = new Promise<string>((resolve) => child.on('close', () => resolve(log)));
  return { child, ready, done };
}

type LogLine = { time: number; msg: string };
const logLines = (text: string): LogLine[] => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

/**
 * The queue's own share of a distributed run, from the processes' log timestamps (so a busy
 * machine's noise in the export itself does not hide it): set-up and enqueue after planning, the
 * first claim after the enqueue, each worker lane's idle time between one shard done and its next
 * claim (per lane), and the coordinator noticing the last shard. Milliseconds.
 */
function queueTime(coordinatorLog: string, workerLogs: string[], lanes: number): number {
  const c = logLines(coordinatorLog);
  const at = (msg: string) => c.find((l) => l.msg === msg)?.time ?? NaN;
  const w = workerLogs.map((x) => logLines(x).filter((l) => l.msg === 'shard claimed' || l.msg === 'shard done'));
  const claims = w.flat().filter((l) => l.msg === 'shard claimed').map((l) => l.time);
  const dones = w.flat().filter((l) => l.msg === 'shard done').map((l) => l.time);
  let idle = 0;
  for (const lane of w) for (let i = 1; i < lane.length; i++) if (lane[i]!.msg === 'shard claimed' && lane[i - 1]!.msg === 'shard done') idle += lane[i]!.time - lane[i - 1]!.time;
  return (at('shards enqueued') - at('planned (distributed)')) + (Math.min(...claims) - at('shards enqueued')) + idle / lanes + (at('all shards done') - Math.max(...dones));
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
    lines.push('| worker processes | threads in all | local rows/s | distributed rows/s | overhead, median (pairs) | queue\'s own time | load average |', '|---:|---:|---:|---:|---:|---:|---:|');
    for (const count of counts) {
      const total = count * threads;
      const local: number[] = [];
      const dist: number[] = [];
      const queue: number[] = [];
      const loads: number[] = [];
      for (let p = 0; p < pairs; p++) {
        const l = await runCli(['run', '--config', configFor(total, 'local', false)]);
        if (l.code !== 0 || exported(l) !== rows) throw new Error(`local run failed or incomplete (exit ${l.code}): ${l.stderr.slice(-500)}`);
        local.push(l.seconds);
        const cfg = configFor(total, 'dist', true);
        const workers = Array.from({ length: count }, () => startWorker(cfg, threads));
        await Promise.all(workers.map((w) => w.ready));
        // Debug: the coordinator's 'shards enqueued' and 'all shards done' timestamps.
        const d = await runCli(['run', '--config', cfg, '--distributed'], 'debug');
        for (const w of workers) w.child.kill('SIGTERM');
        const workerLogs = await Promise.all(workers.map((w) => w.done));
        if (d.code !== 0 || exported(d) !== rows) throw new Error(`distributed run failed or incomplete (exit ${d.code}): ${d.stderr.slice(-500)}`);
        dist.push(d.seconds);
        const q = queueTime(d.stderr, workerLogs, total);
        queue.push(q / 1000 / l.seconds);
        const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;
        loads.push(Number(load));
        log(`${count} process(es): local ${l.seconds.toFixed(2)} s, distributed ${d.seconds.toFixed(2)} s (${((d.seconds / l.seconds - 1) * 100).toFixed(1)} %), queue's own time ${Math.round(q)} ms, load ${load}`);
      }
      const overheads = local.map((l, i) => dist[i]! / l - 1);
      const rate = (s: number) => Math.round(rows / s).toLocaleString('en-US');
      const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
      lines.push(`| ${count} | ${total} | ${rate(median(local))} | ${rate(median(dist))} | ${pct(median(overheads))} (${overheads.map(pct).join(', ')}) | ${pct(median(queue))} | ${median(loads).toFixed(1)} |`);
    }
    lines.push('', 'Times are whole processes (start, plan, export, finalize); worker start-up is not counted (a standing pool). Overhead: distributed time over local time, minus one. The queue\'s own time, from the processes\' log timestamps, over the local time: queue set-up and enqueue after planning, the first claim after the enqueue, each lane\'s idle time between a shard done and its next claim, and the coordinator noticing the last shard. Load average: the 1-minute one after each pair (the machine\'s other work shows in the overhead, not in the queue\'s own time).');
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
