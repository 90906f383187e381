// `npx tsc -p tsconfig.json && node dist/bench/late_rows.js [--rows 1000000] [--late 1000] [--pairs 3]`:
// what the late-row catch-up costs an incremental run. Two offsetKeys export the same data, one
// with lateRows on (PT1H) and one off (PT0S). Run 1 exports N rows; then N new rows arrive plus
// `--late` rows committed late into run 1's ranges; run 2 is the measured incremental run,
// repeated from run 1's saved state, off and on in turn, pair by pair. The result is the median
// of the pairs' whole-process ratios: what turning lateRows on adds to the run (its check scans
// the horizon, which holds all 2 N rows, inside the first shard's scan or beside the window,
// then the late rows go out).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogs, seedKestraLogsParallel } from '../src/demo/seed.js';

/** `rows` more rows with keys after the first seed's, over two connections. */
async function seedSecondHalf(url: string, rows: number, start: string): Promise<void> {
  const half = Math.ceil(rows / 2);
  await Promise.all([0, 1].map(async (i) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const n = i === 0 ? half : rows - half;
      await seedKestraLogs(c, { rows: n, start: new Date(Date.parse(start) + i * 10_000).toISOString(), spanSeconds: 10, seq: rows + i * half });
    } finally {
      await c.end();
    }
  }));
}
import { packageRoot } from '../src/core/paths.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, late: { type: 'string', default: '1000' }, pairs: { type: 'string', default: '3' }, url: { type: 'string' } } });
const CLI = path.join(packageRoot(), 'bin/logship.cjs');
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Where the run's check went: inside the first shard's scan (no time of its own), or a scan of its own. */
const where = (late: { checkMs: number; rangesChecked: number }) => (late.checkMs === 0 && late.rangesChecked > 0 ? "in the first shard's scan" : `${(late.checkMs / 1000).toFixed(2)} s of its own`);

function cli(cfg: string, report: string): Promise<{ seconds: number; report: { durationMs: number; rows: number; late: { durationMs: number; checkMs: number; rows: number; rangesChecked: number } } }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, 'run', '--config', cfg, '--report', report], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`run failed (${code}): ${stderr}`));
      resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, report: JSON.parse(fs.readFileSync(report, 'utf8')) });
    });
  });
}

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const late = Number(values.late);
  const server = values.url ? null : await startEmbeddedPostgres();
  const url = values.url ?? server!.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-late-'));
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    await createKestraSchema(client);
    const iso = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    log(`seeding ${rows.toLocaleString('en-US')} rows for run 1...`);
    await seedKestraLogsParallel(url, { rows, start: iso(50), spanSeconds: 20 * 60, parallel: 2 });
    await client.query('VACUUM ANALYZE logs');
    const config = (key: string, horizon: string) => {
      const dir = path.join(work, key);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'logship.yaml');
      fs.writeFileSync(file, YAML.stringify({
        source: { url }, lookbackPeriod: 'PT1H', safetyLag: 'PT0S', offsetKey: key, workers: 1, lateRows: { horizon },
        state: { type: 'file', path: path.join(dir, 'state.json') },
        logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out'), maxLinesPerFile: 1_000_000 }],
      }));
      return file;
    };
    const on = config('late-on', 'PT1H');
    const off = config('late-off', 'PT0S');
    for (const [name, cfg] of [['on', on], ['off', off]] as const) {
      const r = await cli(cfg, path.join(work, `run1-${name}.json`));
      log(`run 1 (lateRows ${name}): ${r.report.rows} rows in ${r.seconds.toFixed(1)} s`);
    }
    log(`seeding ${rows.toLocaleString('en-US')} new rows and ${late} late rows...`);
    // New rows stamped after run 1's window end (its now()), all in the past by the time run 2 starts.
    const newStart = new Date();
    await seedSecondHalf(url, rows, newStart.toISOString());
    while (Date.now() < newStart.getTime() + 21_000) await new Promise((r) => setTimeout(r, 500));
    await seedKestraLogs(client, { rows: late, start: iso(49), spanSeconds: 18 * 60, seq: 10 * rows });
    await client.query('VACUUM ANALYZE logs');
    // Run 2 again and again from the same starting point: the state and outputs of run 1 are
    // put back before each, so every repetition finds the same new rows and the same late rows.
    const saved = new Map<string, { state: string; parts: Set<string> }>();
    for (const cfg of [on, off]) {
      const dir = path.dirname(cfg);
      saved.set(cfg, { state: fs.readFileSync(path.join(dir, 'state.json'), 'utf8'), parts: new Set(fs.readdirSync(path.join(dir, 'out'))) });
    }
    const restore = (cfg: string) => {
      const dir = path.dirname(cfg);
      const s = saved.get(cfg)!;
      fs.writeFileSync(path.join(dir, 'state.json'), s.state);
      for (const f of fs.readdirSync(path.join(dir, 'out'))) if (!s.parts.has(f)) fs.rmSync(path.join(dir, 'out', f));
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const pairs: { off: Awaited<ReturnType<typeof cli>>; on: Awaited<ReturnType<typeof cli>> }[] = [];
    for (let i = 0; i < Number(values.pairs); i++) {
      // Off first in each pair, so the page cache is as warm for the "on" run as for the next "off".
      restore(off);
      const offRun = await cli(off, path.join(work, `run2-off-${i}.json`));
      restore(on);
      const onRun = await cli(on, path.join(work, `run2-on-${i}.json`));
      if (onRun.report.late.rows !== late) throw new Error(`the catch-up exported ${onRun.report.late.rows} late rows, not ${late}`);
      pairs.push({ off: offRun, on: onRun });
      log(`pair ${i + 1}: off ${offRun.seconds.toFixed(2)} s, on ${onRun.seconds.toFixed(2)} s (check ${where(onRun.report.late)}, catch-up after the window ${(onRun.report.late.durationMs / 1000).toFixed(2)} s)`);
    }
    const overheads = pairs.map((p) => p.on.seconds / p.off.seconds - 1);
    const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
    const lines = [
      `incremental run of ${pairs[0]!.off.report.rows.toLocaleString('en-US')} rows (whole process, median of ${pairs.length}): lateRows off ${median(pairs.map((p) => p.off.seconds)).toFixed(2)} s, PT1H ${median(pairs.map((p) => p.on.seconds)).toFixed(2)} s (+ ${late} late rows)`,
      `  the check (${pairs[0]!.on.report.late.rangesChecked} ranges holding ${(2 * rows + late).toLocaleString('en-US')} rows): ${pairs.every((p) => p.on.report.late.checkMs === 0) ? "carried by the first shard's scan of the table, no scan of its own" : `a scan of its own, median ${(median(pairs.map((p) => p.on.report.late.checkMs)) / 1000).toFixed(2)} s`}`,
      `  after the window (waiting for the check, exporting the late rows): median ${(median(pairs.map((p) => p.on.report.late.durationMs)) / 1000).toFixed(2)} s`,
      `  cost of lateRows to the run: ${pct(median(overheads))} (median of pair ratios; pairs ${overheads.map(pct).join(', ')}); load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await client.end().catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
    await server?.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
