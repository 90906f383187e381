// `npm run bench`: logship against the baselines a user would otherwise use, on the same machine
// and data in the same run. Every contender runs in its own process. Each logship scenario runs
// right after its shell baseline, pair by pair, and we report the median of the pair ratios, so a
// noisy moment slows both sides of one pair instead of flattering (or sinking) one contender.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';
import { packageRoot } from '../src/core/paths.js';

// `--distributed`: the scaling bench of distributed mode (bench/distributed.ts) instead.
if (process.argv.includes('--distributed')) {
  const { distributedBench } = await import('./distributed.js');
  await distributedBench(process.argv.slice(2)).then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : err}\n`);
    process.exit(1);
  });
}

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '2000000' },
    pairs: { type: 'string', default: '3' },
    workers: { type: 'string', default: 'auto' },
    naive: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    chunk: { type: 'string', default: '5000' },
    format: { type: 'string', default: 'ndjson' },
    compression: { type: 'string', default: 'gzip,none' },
    stream: { type: 'string', default: 'copy' },
    url: { type: 'string' },
    targets: { type: 'string', default: 'files' },
    'es-chunk': { type: 'string', default: '1000,5000' },
    out: { type: 'string', default: 'bench/results.md' },
  },
});
const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const ROOT = packageRoot();
const CLI = path.join(ROOT, 'bin/logship.cjs');
const WHERE = `"timestamp" >= now() - interval '1 day' AND "timestamp" < now() - interval '30 seconds'`;

interface Measured { name: string; seconds: number; outBytes: number | null; peakRssBytes: number | null; cpuSeconds: number | null; note?: string }

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ seconds: number; stdout: string; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout, stderr, code }));
  });
}

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const server = values.url ? null : await startEmbeddedPostgres();
  const url = values.url ?? server!.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-'));
  try {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const existing = await client.query(`SELECT to_regclass('logs') IS NOT NULL AS ok`);
    if (!existing.rows[0].ok || !values.url) {
      await createKestraSchema(client);
      log(`seeding ${rows.toLocaleString('en-US')} Kestra rows...`);
      const t0 = Date.now();
      const start = new Date(Date.now() - 23 * 3600_000 - 120_000).toISOString();
      await seedKestraLogsParallel(url, { rows, start, spanSeconds: 23 * 3600, parallel: 2 });
      await client.query('VACUUM ANALYZE logs');
      log(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const stats = await client.query<{ n: string; bytes: string }>(`SELECT count(*) AS n, sum(octet_length(value::text) + 1) AS bytes FROM logs WHERE ${WHERE}`);
    const n = Number(stats.rows[0]!.n);
    const jsonBytes = Number(stats.rows[0]!.bytes);
    const pgVersion = (await client.query('SHOW server_version')).rows[0].server_version as string;
    await client.end();
    const psqlEnv = { ...process.env, PGCONNECT_TIMEOUT: '10' };
    const copyCmd = `\\copy (SELECT value FROM logs WHERE ${WHERE}) TO STDOUT`;

    const baselines: Measured[] = [];
    const node = (file: string, ...args: string[]) => timed(process.execPath, [path.join(ROOT, 'dist/bench/baselines', file), ...args]);
    await node('copy_drain.js', url, WHERE); // warm the cache: every contender then reads from memory
    {
      const r = await node('copy_drain.js', url, WHERE);
      const j = JSON.parse(r.stdout);
      baselines.push({ name: 'COPY … TO STDOUT, drained (source ceiling)', seconds: r.seconds, outBytes: j.outBytes, peakRssBytes: j.peakRssBytes, cpuSeconds: j.cpuSeconds });
    }
    if (values.naive) {
      const out = path.join(work, 'naive.ndjson.gz');
      const r = await node('naive_node.js', url, WHERE, out);
      const j = JSON.parse(r.stdout);
      baselines.push({ name: 'naive Node: pg-query-stream + JSON.stringify + zlib gzip -1', seconds: r.seconds, outBytes: j.outBytes, peakRssBytes: j.peakRssBytes, cpuSeconds: j.cpuSeconds });
    }
    for (const b of baselines) log(`baseline ${b.name}: ${b.seconds.toFixed(2)} s`);
    if (!has('psql')) throw new Error('psql is needed for the paired baselines (apt-get install postgresql-client)');
    const compressor = has('pigz') ? 'pigz -1' : 'gzip -1';

    /** The shell pipeline a logship scenario is compared with: same rows, same kind of output. */
    const shellBaseline = async (compression: string): Promise<{ name: string; seconds: number }> => {
      const sink = compression === 'none' ? 'cat' : compression === 'zstd' && has('zstd') ? 'zstd -1 -q' : compressor;
      const out = path.join(work, 'shell.out');
      const r = await timed('bash', ['-o', 'pipefail', '-c', `psql "$URL" -qAt -c "$COPY" | ${sink} > "${out}"`], { ...psqlEnv, URL: url, COPY: copyCmd });
      if (r.code !== 0) throw new Error(`psql | ${sink} failed: ${r.stderr}`);
      fs.rmSync(out, { force: true });
      return { name: `psql \\copy | ${sink}`, seconds: r.seconds };
    };

    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const pairs = Math.max(1, Number(values.pairs));
    interface Scenario { name: string; baseline: string; logship: number[]; shell: number[]; ratios: number[]; peakRssBytes: number[]; cpuSeconds: number[]; planningMs: number[]; outBytes: number; workersUsed: number }
    const scenarios: Scenario[] = [];
    let k = 0;
    // Parquet compresses its pages (ZSTD by default), never the file: it runs once, as `none`.
    const specs: { workers: string; chunk: string; format: string; compression: string; stream: string; sc: Scenario }[] = [];
    for (const workers of list(values.workers!)) for (const chunk of list(values.chunk!)) for (const format of list(values.format!)) for (const compression of format === 'parquet' ? ['none'] : list(values.compression!)) for (const stream of list(values.stream!)) {
      const sc: Scenario = { name: '', baseline: '', logship: [], shell: [], ratios: [], peakRssBytes: [], cpuSeconds: [], planningMs: [], outBytes: 0, workersUsed: 0 };
      specs.push({ workers, chunk, format, compression, stream, sc });
      scenarios.push(sc);
    }
    // Round-robin: pair p of every scenario runs before pair p + 1 of any, so scenarios compared
    // with each other (NDJSON against Parquet) see the same moments of a shared machine.
    for (let pair = 0; pair < pairs; pair++) {
      for (const { workers, chunk, format, compression, stream, sc } of specs) {
        const shell = await shellBaseline(compression);
        const dir = path.join(work, `s${++k}`);
        fs.mkdirSync(dir);
        const cfg = path.join(dir, 'logship.yaml');
        fs.writeFileSync(cfg, YAML.stringify({
          source: { url, stream, fetchSize: Number(chunk) }, lookbackPeriod: 'P1D', offsetKey: `bench-${k}`, workers: workers === 'auto' ? 'auto' : Number(workers),
          state: { type: 'file', path: path.join(dir, 'state.json') },
          logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out'), format: format.toUpperCase(), compression, maxLinesPerFile: 1_000_000 }],
        }));
        const report = path.join(dir, 'report.json');
        const prof = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(values['cpu-prof'])] : [];
        // Whole-process time: start-up, planning and the final fsyncs included.
        const r = await timed(process.execPath, [...prof, CLI, 'run', '--config', cfg, '--report', report]);
        if (r.code !== 0) throw new Error(`logship scenario ${k} failed: ${r.stderr}`);
        const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
        if (rep.rows !== n) throw new Error(`scenario ${k} exported ${rep.rows} rows, expected ${n}`);
        const planned = (r.stderr.split('\n').find((l) => l.includes('"planned"')) ?? '{}');
        sc.workersUsed = (JSON.parse(planned) as { workers?: number }).workers ?? Number(workers);
        sc.name = `logship ${format === 'parquet' ? 'parquet (ZSTD pages)' : `${format}+${compression}`}, workers=${workers === 'auto' ? `auto (${sc.workersUsed})` : workers}, fetchSize=${chunk}${stream === 'copy' ? '' : `, ${stream}`}`;
        sc.baseline = shell.name;
        sc.shell.push(shell.seconds);
        sc.logship.push(r.seconds);
        sc.ratios.push(shell.seconds / r.seconds);
        sc.peakRssBytes.push(rep.peakRssBytes);
        sc.cpuSeconds.push(rep.cpuSeconds);
        sc.planningMs.push(rep.planningMs);
        sc.outBytes = rep.bytes;
        log(`pair ${pair + 1}/${pairs}: ${shell.name} ${shell.seconds.toFixed(2)} s, ${sc.name} ${r.seconds.toFixed(2)} s (planning ${rep.planningMs} ms): ${(shell.seconds / r.seconds).toFixed(2)}×`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }

    // Elasticsearch `_bulk` throughput against a fast local endpoint in its own process.
    const bulkRows: string[] = [];
    if (list(values.targets!).includes('es')) {
      const server = spawn(process.execPath, [path.join(ROOT, 'dist/bench/fast_bulk_server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
      const esUrl = await new Promise<string>((resolve) => server.stdout.once('data', (d) => resolve(String(d).trim())));
      try {
        for (const workers of list(values.workers!)) for (const chunk of list(values['es-chunk']!)) {
          const dir = path.join(work, `es${++k}`);
          fs.mkdirSync(dir);
          const cfg = path.join(dir, 'logship.yaml');
          fs.writeFileSync(cfg, YAML.stringify({
            source: { url, fetchSize: 5000 }, lookbackPeriod: 'P1D', offsetKey: `bench-es-${k}`, workers: workers === 'auto' ? 'auto' : Number(workers), state: { type: 'file', path: path.join(dir, 'state.json') },
            logExporters: [{ id: 'es', type: 'elasticsearch', indexName: 'kestra-logs-{yyyy.MM.dd}', chunk: Number(chunk), flushBytes: '50MB', concurrency: 4, connection: { hosts: [esUrl] } }],
          }));
          const report = path.join(dir, 'report.json');
          const r = await timed(process.execPath, [CLI, 'run', '--config', cfg, '--report', report]);
          if (r.code !== 0) throw new Error(`es scenario failed: ${r.stderr}`);
          const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
          const line = `| logship → _bulk, workers=${workers}, chunk=${chunk} | ${Math.round(rep.rows / r.seconds).toLocaleString('en-US')} | ${(jsonBytes / 1e6 / r.seconds).toFixed(1)} | ${Math.round(rep.peakRssBytes / 1048576)} MiB | ${rep.cpuSeconds.toFixed(1)} |`;
          bulkRows.push(line);
          log(line);
        }
      } finally {
        server.kill();
      }
    }

    const mb = (b: number | null) => (b === null ? '–' : `${(b / 1e6).toFixed(1)} MB`);
    const lines: string[] = [];
    lines.push(`# logship benchmark`, '');
    lines.push(`${n.toLocaleString('en-US')} synthetic Kestra rows (${(jsonBytes / 1e6).toFixed(0)} MB of NDJSON), PostgreSQL ${pgVersion}${server ? ' (embedded, fsync off, same host)' : ''}, Node ${process.version}, ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)}.`);
    lines.push(`Whole-process wall time, cache warm. Each logship run follows its shell baseline (${pairs} pairs); the ratio is the median of the pair ratios (baseline ÷ logship: above 1× logship is faster). Peak RSS and CPU are the logship process's (PostgreSQL's backends not included).`, '');
    lines.push('## Paired runs', '', '| scenario | baseline | logship (median) | baseline (median) | ratio (median of pairs) | pair ratios | rows/s | peak RSS | CPU s | planning |', '|---|---|---:|---:|---:|---|---:|---:|---:|---:|');
    for (const s of scenarios) {
      const t = median(s.logship);
      lines.push(`| ${s.name} | ${s.baseline.replace(/\|/g, '\\|')} | ${t.toFixed(2)} s | ${median(s.shell).toFixed(2)} s | **${median(s.ratios).toFixed(2)}×** | ${s.ratios.map((x) => x.toFixed(2)).join(', ')} | ${Math.round(n / t).toLocaleString('en-US')} | ${Math.round(Math.max(...s.peakRssBytes) / 1048576)} MiB | ${median(s.cpuSeconds).toFixed(1)} | ${Math.round(median(s.planningMs))} ms |`);
    }
    // Issue 15's Parquet target compares the two formats' rows/s pair by pair (same moments).
    const ndjsonGzip = scenarios.find((s) => s.name.includes('ndjson+gzip'));
    const parquet = scenarios.find((s) => s.name.includes('parquet'));
    if (ndjsonGzip && parquet) {
      const perPair = parquet.logship.map((t, i) => ndjsonGzip.logship[i]! / t);
      lines.push('', `Parquet (ZSTD pages) rows/s ÷ NDJSON+gzip rows/s, pair by pair: ${perPair.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')}; median **${(100 * median(perPair)).toFixed(0)}%**. Load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(', ')}.`);
    }
    lines.push('', '## Reference points (one run each)', '', '| contender | wall | rows/s | output | peak RSS | CPU s |', '|---|---:|---:|---:|---:|---:|');
    for (const b of baselines) lines.push(`| ${b.name} | ${b.seconds.toFixed(2)} s | ${Math.round(n / b.seconds).toLocaleString('en-US')} | ${mb(b.outBytes)} | ${b.peakRssBytes === null ? '–' : `${Math.round(b.peakRssBytes / 1048576)} MiB`} | ${b.cpuSeconds === null ? '–' : b.cpuSeconds.toFixed(1)} |`);
    if (bulkRows.length) lines.push('', '## Elasticsearch `_bulk` (fast local endpoint)', '', '| scenario | docs/s | MB/s | peak RSS | CPU s |', '|---|---:|---:|---:|---:|', ...bulkRows);
    lines.push('', 'Reproduce: `npm run bench -- ' + process.argv.slice(2).map((a, i, all) => (all[i - 1] === '--url' ? '<url>' : a)).join(' ') + '`', '');
    const md = lines.join('\n');
    fs.mkdirSync(path.dirname(path.resolve(values.out!)), { recursive: true });
    fs.writeFileSync(values.out!, md);
    process.stdout.write(md);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await server?.stop();
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
