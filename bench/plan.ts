// `npm run bench:plan`: how long planning takes as the window grows. Seeds a lean log table
// (key, timestamp, small jsonb document; no index, no generated columns) server-side with
// INSERT … SELECT generate_series, so 20 M rows take minutes rather than the hour Kestra-shaped
// rows would, skewed like the issue asks (90% of the rows in the first 10% of the window), then
// times the planner in process and `logship plan` as a whole process, and checks the shards'
// balance with one counting scan. Planning reads a fixed number of sampled rows, so narrower rows
// only mean fewer pages for the same sample.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { loadConfigFile } from '../src/config/load.js';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { computeWindow } from '../src/plan/window.js';
import { planWindow } from '../src/run/runner.js';
import { connectSource } from '../src/source/connection.js';
import { describeTable } from '../src/source/table.js';
import { packageRoot } from '../src/core/paths.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '2000000,20000000' }, url: { type: 'string' }, repeat: { type: 'string', default: '3' } } });
const CLI = path.join(packageRoot(), 'bin/logship.cjs');
const SPAN_S = 23 * 3600;
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Rows seq+1 … seq+n over the last 23 hours: g % 10 ≠ 0 in the first 10% of the span. */
async function seedLean(url: string, from: number, to: number): Promise<void> {
  const parallel = 2;
  const per = Math.ceil((to - from) / parallel);
  await Promise.all(Array.from({ length: parallel }, async (_, i) => {
    const a = from + i * per;
    const b = Math.min(to, a + per);
    if (a >= b) return;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`
      INSERT INTO plan_bench_logs (key, "timestamp", value)
      SELECT substr(md5(g::text), 1, 22), x.ts, jsonb_build_object('level', 'INFO', 'message', 'row ' || g)
      FROM generate_series(${a + 1}::int8, ${b}::int8) g,
        LATERAL (SELECT now() - interval '${SPAN_S + 120} seconds'
          + CASE WHEN g % 10 <> 0 THEN (hashint8(g) & 1048575) / 1048576.0 * ${SPAN_S * 0.1}
                 ELSE ${SPAN_S * 0.1} + (hashint8(g) & 1048575) / 1048576.0 * ${SPAN_S * 0.9} END * interval '1 second' AS ts) x`);
    await c.end();
  }));
}

function timed(args: string[]): Promise<{ seconds: number; stdout: string; code: number | null }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout, code }));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const server = values.url ? null : await startEmbeddedPostgres();
  const url = values.url ?? server!.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-plan-bench-'));
  const lines = ['| window rows | seeding | plan (in process, median) | `logship plan` (whole process, median) | method | estimated rows | shards | largest shard ÷ mean |', '|---:|---:|---:|---:|---|---:|---:|---:|'];
  try {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query('CREATE TABLE IF NOT EXISTS plan_bench_logs (key text NOT NULL, "timestamp" timestamptz NOT NULL, value jsonb NOT NULL)');
    // With --url, continue from the rows an earlier run of this script left there.
    let seeded = Number((await admin.query<{ n: string }>('SELECT count(*) AS n FROM plan_bench_logs')).rows[0]!.n);
    const cfgFile = path.join(work, 'logship.yaml');
    // rowsPerShard set: the lean table has no timestamp index, and at the default the planner would
    // make one shard per worker, leaving the skew check nothing to balance.
    fs.writeFileSync(cfgFile, YAML.stringify({ source: { url, table: 'plan_bench_logs', columns: { level: null, namespace: null, tenant: null } }, lookbackPeriod: 'P1D', rowsPerShard: 1_000_000, state: { type: 'file', path: path.join(work, 'state.json') }, logExporters: [{ id: 'f', type: 'file', directory: path.join(work, 'out') }] }));
    const config = await loadConfigFile(cfgFile, {});
    for (const target of values.rows!.split(',').map(Number)) {
      const t0 = Date.now();
      if (target > seeded) await seedLean(url, seeded, target);
      seeded = target;
      await admin.query('VACUUM ANALYZE plan_bench_logs');
      const seedS = (Date.now() - t0) / 1000;
      log(`seeded ${target.toLocaleString('en-US')} rows in ${seedS.toFixed(0)} s`);

      const client = await connectSource(config.source, 'bench');
      const table = await describeTable(client, config.source);
      const window = (await computeWindow(client, null, config.lookbackPeriod, config.safetyLag))!;
      const inProcess: number[] = [];
      let plan = await planWindow(client, table, config, window);
      for (let i = 0; i < Number(values.repeat); i++) {
        const p0 = process.hrtime.bigint();
        plan = await planWindow(client, table, config, window);
        inProcess.push(Number(process.hrtime.bigint() - p0) / 1e6);
      }
      const whole: number[] = [];
      for (let i = 0; i < Number(values.repeat); i++) {
        const r = await timed([CLI, 'plan', '--config', cfgFile, '--json']);
        if (r.code !== 0) throw new Error('logship plan failed');
        whole.push(r.seconds);
      }
      // Balance: one scan assigns each row to its shard by timestamp (exact unless a cut splits an instant).
      const los = plan.shards.slice(1).map((s) => s.lo.ts);
      const counts = await client.query<{ b: number; n: string }>(
        `SELECT width_bucket("timestamp", $1::timestamptz[]) AS b, count(*) AS n FROM plan_bench_logs WHERE "timestamp" >= $2 AND "timestamp" < $3 GROUP BY 1`,
        [los, window.start.ts, window.end.ts]);
      const sizes = counts.rows.map((r) => Number(r.n));
      const actual = sizes.reduce((a, b) => a + b, 0);
      const worst = Math.max(...sizes) / (actual / plan.shards.length);
      await client.end();
      const line = `| ${actual.toLocaleString('en-US')} | ${seedS.toFixed(0)} s | ${median(inProcess).toFixed(0)} ms | ${median(whole).toFixed(2)} s | ${plan.method} | ${plan.totalRows.toLocaleString('en-US')} | ${plan.shards.length} | ${worst.toFixed(2)} |`;
      log(line);
      lines.push(line);
    }
    await admin.end();
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await server?.stop();
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
