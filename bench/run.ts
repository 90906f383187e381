// `npm run bench`: logship against the baselines a user would otherwise use, on the same machine
// and data in the same run. Every contender runs in its own process; we report ratios.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';
import { packageRoot } from '../src/util/paths.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    workers: { type: 'string', default: '1,2' },
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
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
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
    if (has('psql')) {
      for (const [name, sink] of [['psql \\copy | gzip -1', 'gzip -1'], ['psql \\copy | pigz -1', 'pigz -1']] as const) {
        if (!has(sink.split(' ')[0]!)) {
          baselines.push({ name, seconds: NaN, outBytes: null, peakRssBytes: null, cpuSeconds: null, note: `${sink.split(' ')[0]} not installed` });
          continue;
        }
        const out = path.join(work, 'shell.gz');
        const r = await timed('bash', ['-o', 'pipefail', '-c', `psql "$URL" -qAt -c "$COPY" | ${sink} > "${out}"`], { ...psqlEnv, URL: url, COPY: copyCmd });
        if (r.code !== 0) throw new Error(`${name} failed: ${r.stderr}`);
        baselines.push({ name, seconds: r.seconds, outBytes: fs.statSync(out).size, peakRssBytes: null, cpuSeconds: null });
      }
    } else {
      baselines.push({ name: 'psql \\copy | gzip/pigz', seconds: NaN, outBytes: null, peakRssBytes: null, cpuSeconds: null, note: 'psql not installed' });
    }
    {
      const out = path.join(work, 'naive.ndjson.gz');
      const r = await node('naive_node.js', url, WHERE, out);
      const j = JSON.parse(r.stdout);
      baselines.push({ name: 'naive Node: pg-query-stream + JSON.stringify + zlib gzip -1', seconds: r.seconds, outBytes: j.outBytes, peakRssBytes: j.peakRssBytes, cpuSeconds: j.cpuSeconds });
    }
    for (const b of baselines) log(`baseline ${b.name}: ${Number.isNaN(b.seconds) ? b.note : `${b.seconds.toFixed(2)} s`}`);

    const scenarios: (Measured & { planningMs: number })[] = [];
    let k = 0;
    for (const workers of list(values.workers!)) for (const chunk of list(values.chunk!)) for (const format of list(values.format!)) for (const compression of list(values.compression!)) for (const stream of list(values.stream!)) {
      const dir = path.join(work, `s${++k}`);
      fs.mkdirSync(dir);
      const cfg = path.join(dir, 'logship.yaml');
      fs.writeFileSync(cfg, YAML.stringify({
        source: { url, stream, fetchSize: Number(chunk) }, lookbackPeriod: 'P1D', offsetKey: `bench-${k}`, workers: Number(workers),
        state: { type: 'file', path: path.join(dir, 'state.json') },
        logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out'), format: format.toUpperCase(), compression, maxLinesPerFile: 1_000_000 }],
      }));
      const report = path.join(dir, 'report.json');
      const r = await timed(process.execPath, [CLI, 'run', '--config', cfg, '--report', report]);
      if (r.code !== 0) throw new Error(`logship scenario ${k} failed: ${r.stderr}`);
      const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
      if (rep.rows !== n) throw new Error(`scenario ${k} exported ${rep.rows} rows, expected ${n}`);
      const name = `logship ${format}+${compression}, workers=${workers}, fetchSize=${chunk}${stream === 'copy' ? '' : `, ${stream}`}`;
      scenarios.push({ name, seconds: r.seconds, outBytes: rep.bytes, peakRssBytes: rep.peakRssBytes, cpuSeconds: rep.cpuSeconds, planningMs: rep.planningMs });
      log(`${name}: ${r.seconds.toFixed(2)} s (planning ${rep.planningMs} ms)`);
      fs.rmSync(dir, { recursive: true, force: true });
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
            source: { url, fetchSize: 5000 }, lookbackPeriod: 'P1D', offsetKey: `bench-es-${k}`, workers: Number(workers), state: { type: 'file', path: path.join(dir, 'state.json') },
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
    const row = (m: Measured) => `| ${m.name} | ${Number.isNaN(m.seconds) ? '–' : Math.round(n / m.seconds).toLocaleString('en-US')} | ${Number.isNaN(m.seconds) ? '–' : (jsonBytes / 1e6 / m.seconds).toFixed(1)} | ${mb(m.outBytes)} | ${m.peakRssBytes === null ? '–' : `${Math.round(m.peakRssBytes / 1048576)} MiB`} | ${m.cpuSeconds === null ? '–' : m.cpuSeconds.toFixed(1)} |`;
    const lines: string[] = [];
    lines.push(`# logship benchmark`, '');
    lines.push(`${n.toLocaleString('en-US')} synthetic Kestra rows (${(jsonBytes / 1e6).toFixed(0)} MB of NDJSON), PostgreSQL ${pgVersion}${server ? ' (embedded, fsync off)' : ''}, Node ${process.version}, ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)}.`);
    lines.push(`Wall time per contender, each in its own process, cache warm. MB/s is uncompressed NDJSON. Peak RSS and CPU are the exporting process's (PostgreSQL's backends not included); "–" where a shell pipeline has none to report.`, '');
    lines.push('## Baselines', '', '| contender | rows/s | MB/s | output | peak RSS | CPU s |', '|---|---:|---:|---:|---:|---:|');
    for (const b of baselines) lines.push(Number.isNaN(b.seconds) ? `| ${b.name} | skipped: ${b.note} | | | | |` : row(b));
    const ok = baselines.filter((b) => !Number.isNaN(b.seconds));
    lines.push('', '## logship', '', `| scenario | rows/s | MB/s | output | peak RSS | CPU s | planning | ${ok.map((b) => `vs ${b.name.split(' (')[0]!.split(':')[0]}`).join(' | ')} |`, `|---|---:|---:|---:|---:|---:|---:|${ok.map(() => '---:').join('|')}|`);
    for (const s of scenarios) lines.push(`${row(s)} ${s.planningMs} ms | ${ok.map((b) => `${(b.seconds / s.seconds).toFixed(2)}×`).join(' | ')} |`);
    if (bulkRows.length) lines.push('', '## Elasticsearch `_bulk` (fast local endpoint)', '', '| scenario | docs/s | MB/s | peak RSS | CPU s |', '|---|---:|---:|---:|---:|', ...bulkRows);
    lines.push('', 'Ratios are baseline time ÷ logship time: above 1× logship is faster. Reproduce: `npm run bench -- ' + process.argv.slice(2).join(' ') + '`', '');
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
