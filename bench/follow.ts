// `npm run bench:follow [-- --seconds 30 --interval PT1S --safety-lag PT1S]`: latency of
// `run --follow` (issue #25), from a row's commit to its file appearing, for rows arriving steadily
// and rows committed late (a transaction held open until the offset has passed its rows).
// `npm run bench:follow -- --cycles 1000 --interval PT0.05S [--node-options '…']`: the soak. The
// process's current RSS (and its high-water mark), open file descriptors and threads (/proc) and
// its sessions (pg_stat_activity), sampled every --poll-ms with rows arriving all the while, shown
// at cycle 10 and every tenth of the run and judged against issue #25's target (follow_soak.ts).
// Both write their figures into their own section of --out. One embedded PostgreSQL, torn down on
// every way out.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { freePort, startEmbeddedPostgres, type RunningPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogs } from '../src/demo/seed.js';
import { isoDurationMillis } from '../src/core/options.js';
import { packageRoot } from '../src/core/paths.js';
import { procStats, soakReport, soakRow, writeSection, type SoakSample } from './follow_soak.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    interval: { type: 'string', default: 'PT1S' },
    'safety-lag': { type: 'string', default: 'PT1S' },
    /** Rows per arrival, one arrival every 100 ms. */
    batch: { type: 'string', default: '5' },
    /** Every how many arrivals one is a late commit. */
    'late-every': { type: 'string', default: '10' },
    cycles: { type: 'string' },
    horizon: { type: 'string', default: 'PT30S' },
    /** Soak: how often the follow process is sampled (and its /metrics read); default max(250 ms, interval). */
    'poll-ms': { type: 'string' },
    /** Soak: NODE_OPTIONS for the follow process (V8 heap flags, say). */
    'node-options': { type: 'string' },
    out: { type: 'string', default: 'bench/results_follow.md' },
  },
});

const CLI = path.join(packageRoot(), 'bin/logship.cjs');
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))] ?? NaN;

let server: RunningPostgres | null = null;
let child: ChildProcess | null = null;
let work: string | null = null;
async function cleanup(): Promise<void> {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await server?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
  work = null;
}
process.on('exit', () => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

let seq = 0;
/** `n` rows stamped now whose message is their key, so a delivered line names its row. */
async function insert(c: pg.Client, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, () => `b${(++seq).toString(36).padStart(10, '0')}`);
  await c.query(
    `INSERT INTO logs (key, value) SELECT k, jsonb_build_object('namespace', 'bench', 'flowId', 'follow', 'level', 'INFO', 'message', k,
       'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) FROM unnest($1::text[]) AS k`, [keys]);
  return keys;
}

/** Keys seen in finished files under `dir`, with the instant each was first seen. */
function watchOutput(dir: string): { seen: Map<string, number>; duplicates: () => number; stop(): void } {
  const seen = new Map<string, number>();
  let duplicates = 0;
  const files = new Set<string>();
  const timer = setInterval(() => {
    if (!fs.existsSync(dir)) return;
    const now = Date.now();
    for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      if (path.basename(f).startsWith('.') || files.has(f) || !f.endsWith('.ndjson')) continue;
      files.add(f);
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        if (!line) continue;
        const key = (JSON.parse(line) as { message: string }).message;
        if (!seen.has(key)) seen.set(key, now);
        else duplicates++;
      }
    }
  }, 10);
  return { seen, duplicates: () => duplicates, stop: () => clearInterval(timer) };
}

async function setup(o: { interval: string; horizon: string }): Promise<{ url: string; writer: pg.Client; out: string; cfg: string }> {
  server = await startEmbeddedPostgres();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-follow-'));
  const writer = new pg.Client({ connectionString: server.url, application_name: 'bench-follow' });
  writer.on('error', () => {});
  await writer.connect();
  await createKestraSchema(writer);
  await seedKestraLogs(writer, { rows: 2000, start: new Date(Date.now() - 600_000).toISOString(), spanSeconds: 300 });
  const out = path.join(work, 'out');
  const cfg = path.join(work, 'logship.yaml');
  fs.writeFileSync(cfg, YAML.stringify({
    source: { url: server.url }, lookbackPeriod: 'P1D', safetyLag: values['safety-lag'], workers: 2, lateRows: { horizon: o.horizon },
    state: { type: 'file', path: path.join(work, 'state.json') },
    logExporters: [{ id: 'files', type: 'file', directory: out, compression: 'none', keyTemplate: '{date}/{hour}/{prefix}-{shard}-{part}.{ext}' }],
  }));
  return { url: server.url, writer, out, cfg };
}

function startFollow(cfg: string, interval: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): { stderr: () => string; exited: Promise<number | null> } {
  let stderr = '';
  child = spawn(process.execPath, [CLI, 'run', '--config', cfg, '--follow', '--interval', interval, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOGSHIP_LOG_LEVEL: 'warn', ...env } });
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child!.on('exit', (code) => r(code)));
  return { stderr: () => stderr, exited };
}

async function latency(): Promise<void> {
  const seconds = Number(values.seconds);
  const batch = Number(values.batch);
  const lateEvery = Number(values['late-every']);
  const { url, writer, out, cfg } = await setup({ interval: values.interval!, horizon: 'PT1H' });
  const follow = startFollow(cfg, values.interval!);
  const watch = watchOutput(out);
  const committed = new Map<string, { at: number; late: boolean }>();
  const deadline = Date.now() + seconds * 1000;
  const holds: Promise<void>[] = [];
  const loadBefore = loadavg();
  // Held open past interval + safetyLag: a cycle reads the range first, the late check then finds them.
  const holdMs = 3000;
  for (let i = 0; Date.now() < deadline; i++) {
    if (i % lateEvery === lateEvery - 1) {
      const c = new pg.Client({ connectionString: url, application_name: 'bench-follow' });
      await c.connect();
      await c.query('BEGIN');
      const keys = await insert(c, batch);
      holds.push(sleep(holdMs).then(async () => {
        await c.query('COMMIT');
        const at = Date.now();
        for (const k of keys) committed.set(k, { at, late: true });
        await c.end();
      }));
    } else {
      const keys = await insert(writer, batch);
      const at = Date.now();
      for (const k of keys) committed.set(k, { at, late: false });
    }
    await sleep(100);
  }
  await Promise.all(holds);
  const until = Date.now() + 120_000;
  while ([...committed.keys()].some((k) => !watch.seen.has(k)) && Date.now() < until) await sleep(50);
  watch.stop();
  child!.kill('SIGTERM');
  const code = await follow.exited;
  const lat = (late: boolean) => [...committed].filter(([, v]) => v.late === late).map(([k, v]) => (watch.seen.get(k) ?? NaN) - v.at);
  const missing = [...committed.keys()].filter((k) => !watch.seen.has(k)).length;
  const row = (name: string, xs: number[]) => `| ${name} | ${xs.length} | ${pct(xs, 0.5)} | ${pct(xs, 0.99)} | ${Math.max(...xs)} |`;
  const report = [
    `### Latency, ${new Date().toISOString().slice(0, 10)}`, '',
    `Commit → file (ms): \`--interval ${values.interval}\`, \`safetyLag: ${values['safety-lag']}\`, ${seconds} s of ${batch} rows every 100 ms, 1 arrival in ${lateEvery} held open ${holdMs} ms; NODE_OPTIONS ${process.env.NODE_OPTIONS ? `\`${process.env.NODE_OPTIONS}\`` : 'unset'}; exit ${code}; missing ${missing}, duplicated ${watch.duplicates()}; load average before ${loadBefore}, after ${loadavg()} (latency is sensitive to load).`, '',
    '| rows | n | median | p99 | worst |\n|---|---:|---:|---:|---:|',
    row('on time', lat(false)),
    row('late commits (after the window read them)', lat(true)),
  ].join('\n');
  log(`\n${report}`);
  writeSection(values.out!, 'latency', report);
  await writer.end();
}

async function soak(cycles: number): Promise<void> {
  const { url, writer, cfg } = await setup({ interval: values.interval!, horizon: values.horizon! });
  const port = await freePort();
  // The follow process's NODE_OPTIONS: --node-options, else whatever this process was given.
  const nodeOptions = values['node-options'] ?? process.env.NODE_OPTIONS ?? '';
  const follow = startFollow(cfg, values.interval!, ['--metrics-port', String(port)], nodeOptions ? { NODE_OPTIONS: nodeOptions } : {});
  const admin = new pg.Client({ connectionString: url, application_name: 'bench-follow' });
  await admin.connect();
  const okCycles = async () => {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => '');
    return Number(/^logship_cycles_total\{[^}]*outcome="ok"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const sessions = async () => Number((await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'logship%'")).rows[0].n);
  let arriving = true;
  // Rows all the while: a few every 200 ms, so some cycles ship and some are idle.
  const writing = (async () => {
    while (arriving) {
      await insert(writer, 3);
      await sleep(200);
    }
  })();
  const loadBefore = loadavg();
  const started = Date.now();
  // A scrape of /metrics is work on the follow process's main thread (~30 KB of strings): read it
  // every poll-ms, by default about once a cycle and at most 4 times a second (a Prometheus
  // scrapes every 15-60 s), except fast up to cycle 10, the reference.
  const pollMs = Number(values['poll-ms'] ?? Math.max(250, isoDurationMillis(values.interval!) ?? 0));
  const samples: SoakSample[] = [];
  const marks: SoakSample[] = [];
  const sample = async (cycle: number, atMark: boolean) => {
    const s: SoakSample = { cycle, seconds: (Date.now() - started) / 1000, ...procStats(child!.pid!), load: os.loadavg()[0]!, sessions: await sessions() };
    samples.push(s);
    if (atMark) {
      marks.push(s);
      log(soakRow(s));
    }
  };
  const tenths = Array.from({ length: 10 }, (_, i) => Math.round(((i + 1) * cycles) / 10)).filter((m) => m > 10);
  let failed = false;
  for (let done = 0; done < cycles; ) {
    done = await okCycles();
    if (child!.exitCode !== null) {
      failed = true;
      break;
    }
    if (marks.length === 0) {
      if (done >= 10) await sample(done, true);
      else await sleep(10);
      continue;
    }
    const atMark = tenths.length > 0 && done >= tenths[0]!;
    while (tenths.length > 0 && done >= tenths[0]!) tenths.shift();
    await sample(done, atMark);
    if (done < cycles) await sleep(pollMs);
  }
  arriving = false;
  await writing;
  child!.kill('SIGTERM');
  const code = await follow.exited;
  const setting = `${cycles} cycles at \`--interval ${values.interval}\`, \`lateRows.horizon: ${values.horizon}\`, 3 rows every 200 ms, /metrics read every ${pollMs} ms, NODE_OPTIONS ${nodeOptions ? `\`${nodeOptions}\`` : 'unset'}, Node ${process.version}`;
  const title = `--interval ${values.interval}${nodeOptions ? ` NODE_OPTIONS=${nodeOptions}` : ''}`;
  const report = soakReport({ title, setting, samples, marks, cycles, exit: `${code}${failed ? ' (ended early!)' : ''}`, loadBefore, loadAfter: loadavg(), date: new Date().toISOString().slice(0, 10) });
  log(`\n${report}`);
  if (follow.stderr().trim()) log(`stderr:\n${follow.stderr().slice(-2000)}`);
  // One section per interval and NODE_OPTIONS, so a stress run and a production-like one sit side by side.
  writeSection(values.out!, `soak ${title}`, report);
  await admin.end();
  await writer.end();
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void cleanup().then(() => process.exit(130)));
(values.cycles ? soak(Number(values.cycles)) : latency()).then(
  () => cleanup(),
  async (err: unknown) => {
    log(String((err as Error).stack ?? err));
    await cleanup();
    process.exitCode = 1;
  },
);
