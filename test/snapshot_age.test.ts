import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import pino from 'pino';
import type { Piscina } from 'piscina';
import YAML from 'yaml';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/shard/config.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { runDistributed } from '../src/run/distributed/coordinator.js';
import { Progress } from '../src/run/progress.js';
import { readWithCopy } from '../src/source/copy_reader.js';
import { emptyReport, type RunReport } from '../src/run/report.js';
import { runExport } from '../src/run/run.js';
import { closeShardSession, exportShard, type ShardTaskInput } from '../src/shard/export_shard.js';
import { StopControl } from '../src/run/stop.js';
import type { SnapshotClock } from '../src/shard/snapshot_age.js';
import type { ReadRange, ShardOutcome } from '../src/state/types.js';
import type { Logger } from '../src/core/log.js';
import { connectTo, freshDatabase, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, tempDir } from './helpers/cli.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await closeShardSession();
  await Promise.all(opened.map((c) => c.end()));
});

const SECOND = 1000;
const MINUTE = 60 * SECOND;
/** Every test reads with this limit, and a clock that moves STEP per reading: a renewal every 3 batches. */
const LIMIT = 'PT1M';
const STEP = 20 * SECOND;
const noSecrets = { secrets: { env: {}, secretsDir: undefined } };

/**
 * The snapshots' clock: `stepMs` further on every reading (a read takes one when it takes a
 * snapshot, after each batch and when it ends its transaction). `at.act` runs once, when the clock
 * first reaches `at.ms`, before that reading is returned: the read then waits for it.
 */
function steppingClock(stepMs: number, at?: { ms: number; act: () => Promise<unknown> }): SnapshotClock {
  let now = 0;
  let pending = at;
  return async () => {
    now += stepMs;
    if (pending && now >= pending.ms) {
      const act = pending.act;
      pending = undefined;
      await act();
    }
    return now;
  };
}

/**
 * A shard pool that exports in this thread with `clock` (a function cannot cross to a worker
 * thread), keeping each shard's outcome as the task returned it. One shard at a time: the task
 * keeps one source session per thread.
 */
function inProcessPool(clock: SnapshotClock, outcomes: ShardOutcome[], change: (task: ShardTaskInput) => ShardTaskInput = (t) => t): Piscina {
  return {
    run: async (task: ShardTaskInput) => {
      const outcome = await exportShard(change({ ...task, clock }));
      outcomes.push(outcome);
      return outcome;
    },
  } as unknown as Piscina;
}

function logger(lines: string[]): Logger {
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(chunk.toString()); done(); } });
  return pino({ level: 'info', base: undefined }, sink) as unknown as Logger;
}

function options(pool: Piscina, lines: string[]) {
  const log = logger(lines);
  return { log, pool, progress: new Progress({ tty: false, intervalMs: 3_600_000, stream: process.stderr, log }) };
}

function configOf(source: Record<string, unknown>, rest: Record<string, unknown>): Config {
  return loadConfigText(YAML.stringify({
    source: { fetchSize: 200, maxSnapshotAge: LIMIT, ...source }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, rowsPerShard: 100_000, ...rest,
  }), noSecrets);
}

/** A whole second, `seconds` ago: rows seeded one a second from it have no fraction of a second. */
function wholeSecondsAgo(seconds: number): string {
  return new Date(Math.floor(Date.now() / SECOND) * SECOND - seconds * SECOND).toISOString();
}

function plusMs(iso: string, ms: number): string {
  return new Date(Date.parse(iso) + ms).toISOString();
}

async function storedReads(client: pg.Client, offsetKey: string): Promise<ReadRange[]> {
  return (await client.query<{ reads: ReadRange[] }>('SELECT reads FROM logship_state WHERE offset_key = $1', [offsetKey])).rows[0]!.reads;
}

async function count(client: pg.Client, where: string): Promise<number> {
  return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM logs WHERE ${where}`)).rows[0]!.n);
}

/** The ranges are the shard's, one after the other, with distinct ids. */
function expectContiguous(reads: ReadRange[], shard: { lo: unknown; hi: unknown }): void {
  expect(reads[0]!.lo).toEqual(shard.lo);
  expect(reads.at(-1)!.hi).toEqual(shard.hi);
  for (let i = 1; i < reads.length; i++) expect(reads[i]!.lo).toEqual(reads[i - 1]!.hi);
  expect(new Set(reads.map((r) => r.id)).size).toBe(reads.length);
}

/** Rows in each renewed read of the seeded tables (one a second, on whole seconds). */
const N = 3000;

/**
 * A database of N rows, one a second on whole seconds (a renewal comes after row 600, 1200…, in
 * 200-row batches), and `u`: a transaction left open, to be committed after the read, holding a
 * row between every two rows (x.5 s), so in every gap between a read's last row and the next
 * read's first. All of them late.
 */
async function withOpenInterleavedRows(name: string): Promise<{ url: string; client: pg.Client; start: string; u: pg.Client }> {
  const { url, client } = await freshDatabase(name);
  opened.push(client);
  const start = wholeSecondsAgo(3300);
  await seedKestraLogs(client, { rows: N, start, spanSeconds: N, tieGroup: 1 });
  const u = await connectTo(url, opened);
  await u.query('BEGIN');
  await seedKestraLogs(u, { rows: N, start: plusMs(start, 500), spanSeconds: N, tieGroup: 1, seq: 1_000_000 });
  return { url, client, start, u };
}

describe('source.maxSnapshotAge: no shard read holds its snapshot longer', () => {
  it.each(['copy', 'cursor'] as const)('an ordered %s read renews its snapshot every minute: each row once, rows committed into the part already read caught by the next run once, the report bounded', async (stream) => {
    const { url, client, start, u } = await withOpenInterleavedRows(`snapage_${stream}`);
    // Committed when the first snapshot has passed the limit, before the second is taken (x.25 s,
    // every 10 s): its rows before the renewal point are late, those after it read by this run.
    const t = await connectTo(url, opened);
    await t.query('BEGIN');
    await seedKestraLogs(t, { rows: N / 10, start: plusMs(start, 250), spanSeconds: N, tieGroup: 1, seq: 2_000_000 });

    const dir = tempDir(`snapage-${stream}`);
    const out = path.join(dir, 'out');
    const config = configOf({ url, stream, ordered: true }, { offsetKey: `age-${stream}`, logExporters: [{ id: 'files', type: 'file', directory: out }] });
    const clock = steppingClock(STEP, { ms: STEP + MINUTE, act: () => t.query('COMMIT') });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const first = await runExport(config, options(inProcessPool(clock, outcomes), lines));
    await u.query('COMMIT');
    expect(first.status, lines.join('')).toBe('ok');

    expect(outcomes).toHaveLength(1);
    const renewals = outcomes[0]!.renewals!;
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    expect(first.snapshotRenewals).toBe(renewals.length);
    // A snapshot is given up at the first reading past the limit, one step later.
    expect(first.oldestSnapshotMs).toBeGreaterThanOrEqual(MINUTE);
    expect(first.oldestSnapshotMs).toBeLessThanOrEqual(MINUTE + STEP);
    // The second snapshot sees the transaction committed before it; the first does not.
    expect(renewals[0]!.snapshot).not.toBe(outcomes[0]!.snapshot);
    const f1 = renewals[0]!.lo;
    const tLate = await count(client, `date_part('milliseconds', "timestamp")::int % 1000 = 250 AND "timestamp" < '${f1.ts}'`);
    expect(tLate).toBeGreaterThan(0);
    expect(tLate).toBeLessThan(N / 10);
    // This run: the first snapshot's rows, and the transaction's rows from the renewal point on.
    expect(first.rows).toBe(N + N / 10 - tLate);

    const reads = await storedReads(client, config.offsetKey);
    expect(reads).toHaveLength(renewals.length + 1);
    const shard = first.runs[0]!.window;
    expectContiguous(reads, { lo: shard.start, hi: shard.end });
    expect(reads.slice(1).map((r) => r.lo)).toEqual(renewals.map((r) => r.lo));
    expect(reads.slice(1).map((r) => r.snapshot)).toEqual(renewals.map((r) => r.snapshot));

    // The next run catches every late row once: those of the first transaction before the
    // renewal point, and all of the second; catch-ups read in their one snapshot.
    const lateOutcomes: ShardOutcome[] = [];
    const second = await runExport(config, options(inProcessPool(clock, lateOutcomes), lines));
    expect(second.late.rows).toBe(N + tLate);
    expect(second.late.rangesCaughtUp).toBe(reads.length);
    expect(lateOutcomes.every((o) => o.renewals === undefined)).toBe(true);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const third = await runExport(config, options(inProcessPool(clock, []), lines));
    expect(third.late.rows + third.rows).toBe(0);
  }, 120_000);

  it('a bad row the reader had already dead-lettered beyond the renewal point is not dead-lettered again by the renewed read', async () => {
    const { url, client } = await freshDatabase('snapage_bad_rows');
    opened.push(client);
    await seedKestraLogs(client, { rows: 3000, start: wholeSecondsAgo(3300), spanSeconds: 3000, tieGroup: 1 });
    // One row in 25 over maxRowBytes: some lie just past each renewal point, already parsed.
    await client.query(`UPDATE logs SET value = jsonb_set(value, '{message}', to_jsonb(repeat('x', 6000))) WHERE extract(epoch FROM "timestamp")::int % 25 = 0`);
    const bad = await count(client, `length(value::text) > 4096`);
    const dir = tempDir('snapage-bad-rows');
    const config = configOf({ url, ordered: true }, {
      maxRowBytes: '4KiB', deadLetter: path.join(dir, 'dead'), logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const outcomes: ShardOutcome[] = [];
    const report = await runExport(config, options(inProcessPool(steppingClock(STEP), outcomes), []));
    expect(outcomes[0]!.renewals!.length).toBeGreaterThanOrEqual(3);
    expect(report.badRows).toBe(bad);
    const deadKeys = listParts(path.join(dir, 'dead')).flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { key: string }).key));
    expect(deadKeys).toHaveLength(bad);
    expect(new Set(deadKeys).size).toBe(bad);
    expect(exportedDocs(path.join(dir, 'out'))).toEqual(await sourceDocs(client, 'length(value::text) <= 4096'));
  }, 120_000);

  it('an unordered read that passes the limit is read again, ordered, and renews; one expected to come near it is read ordered from the start', async () => {
    const { url, client } = await freshDatabase('snapage_unordered');
    opened.push(client);
    await seedKestraLogs(client, { rows: N, start: wholeSecondsAgo(3300), spanSeconds: N });
    const dir = tempDir('snapage-unordered');
    const out = path.join(dir, 'out');
    const config = configOf({ url }, { logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 500 }] });
    expect(config.source.ordered).toBe(false);
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const report = await runExport(config, options(inProcessPool(steppingClock(STEP), outcomes), lines));
    expect(report.status, lines.join('')).toBe('ok');
    expect(outcomes[0]!.restartedOrdered).toBe(true);
    expect(outcomes[0]!.renewals!.length).toBeGreaterThanOrEqual(3);
    expect(report.orderedRereads).toBe(1);
    // The abandoned read's snapshot counts too: it was given up at the first reading past the limit.
    expect(report.oldestSnapshotMs).toBeGreaterThanOrEqual(MINUTE);
    expect(report.oldestSnapshotMs).toBeLessThanOrEqual(MINUTE + STEP);
    expect(lines.join('')).toContain('an unordered shard read passed source.maxSnapshotAge');
    // The abandoned read's parts were taken back: each row once.
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));

    // Told that the shard may come near the limit (the shards done so far say so), it is read
    // ordered at once: no read is thrown away.
    const config2 = configOf({ url }, { offsetKey: 'told', logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out2') }] });
    const told: ShardOutcome[] = [];
    await runExport(config2, options(inProcessPool(steppingClock(STEP), told, (task) => ({ ...task, orderedForAge: true })), lines));
    expect(told[0]!.restartedOrdered).toBeUndefined();
    expect(told[0]!.renewals!.length).toBeGreaterThanOrEqual(3);
    expect(exportedDocs(path.join(dir, 'out2'))).toEqual(await sourceDocs(client));
  }, 120_000);

  it('a run stopped after a renewing shard and resumed records that shard\'s pieces from the stored outcome (file state)', async () => {
    const { url, client } = await freshDatabase('snapage_resume');
    opened.push(client);
    await seedKestraLogs(client, { rows: 3000, start: wholeSecondsAgo(3300), spanSeconds: 3000, tieGroup: 1 });
    const dir = tempDir('snapage-resume');
    const out = path.join(dir, 'out');
    const statePath = path.join(dir, 'state.json');
    const config = configOf({ url, ordered: true }, { rowsPerShard: 1500, state: { type: 'file', path: statePath }, logExporters: [{ id: 'files', type: 'file', directory: out }] });
    const clock = steppingClock(STEP);
    const outcomes: ShardOutcome[] = [];
    const stop = new StopControl({ maxDurationMs: null, stopGraceMs: 0 });
    // A signal once the first shard is done: the second is left for the next run.
    const pool = inProcessPool(clock, outcomes, (task) => {
      if (outcomes.length === 1) stop.request('SIGTERM');
      return task;
    });
    const lines: string[] = [];
    const first = await runExport(config, { ...options(pool, lines), stop });
    expect(first.status, lines.join('')).toBe('partial');
    expect(outcomes).toHaveLength(1);
    const renewed = outcomes[0]!.renewals!;
    expect(renewed.length).toBeGreaterThanOrEqual(2);
    await runExport(config, options(inProcessPool(clock, outcomes), lines));
    expect(outcomes).toHaveLength(2);
    const state = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { entries: Record<string, { reads: ReadRange[] }> };
    const reads = state.entries[config.offsetKey]!.reads;
    expect(reads).toHaveLength(renewed.length + 1 + (outcomes[1]!.renewals?.length ?? 0) + 1);
    expect(reads.slice(1, renewed.length + 1).map((r) => r.lo)).toEqual(renewed.map((r) => r.lo));
    for (let i = 1; i < reads.length; i++) expect(reads[i]!.lo).toEqual(reads[i - 1]!.hi);
    expect(new Set(reads.map((r) => r.id)).size).toBe(reads.length);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 120_000);

  it('the shard that carries the late-row check keeps its finding across a renewal (it passed the checked ranges first): late rows caught once', async () => {
    const { url, client } = await freshDatabase('snapage_carried');
    opened.push(client);
    const start = wholeSecondsAgo(3300);
    await seedKestraLogs(client, { rows: 2000, start, spanSeconds: 2000 });
    const dir = tempDir('snapage-carried');
    const out = path.join(dir, 'out');
    const config = configOf({ url, ordered: true }, { logExporters: [{ id: 'files', type: 'file', directory: out }] });
    const lines: string[] = [];
    expect((await runExport({ ...config, source: { ...config.source, maxSnapshotAgeMs: 0 } }, options(inProcessPool(steppingClock(STEP), []), lines))).status).toBe('ok');
    // Late rows in the range just exported, and new rows in the next window (after this one's end).
    const windowEnd = new Date().toISOString();
    await seedKestraLogs(client, { rows: 150, start: plusMs(start, 300), spanSeconds: 1500, seq: 500_000 });
    await seedKestraLogs(client, { rows: 2000, start: windowEnd, spanSeconds: 1, seq: 600_000 });
    await new Promise((r) => setTimeout(r, 1200)); // the new rows are in the past for the next run
    const outcomes: ShardOutcome[] = [];
    const report = await runExport(config, options(inProcessPool(steppingClock(STEP), outcomes), lines));
    expect(lines.join('')).toContain('the first one also checks the exported ranges for late rows');
    const carrier = outcomes[0]!;
    expect(carrier.renewals!.length).toBeGreaterThanOrEqual(2);
    expect(carrier.lateCheck!.hits).toHaveLength(1);
    expect(report.late.rows).toBe(150);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 120_000);

  it('delete: true keeps one snapshot per shard (its delete and checkpoint are in it), warning once that the limit set does not apply', async () => {
    const { url, client } = await freshDatabase('snapage_delete');
    opened.push(client);
    await seedKestraLogs(client, { rows: 3000, start: wholeSecondsAgo(3300), spanSeconds: 3000 });
    const expected = await sourceDocs(client);
    const out = path.join(tempDir('snapage-delete'), 'out');
    const config = configOf({ url, ordered: true }, { delete: true, logExporters: [{ id: 'files', type: 'file', directory: out }] });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const report = await runExport(config, options(inProcessPool(steppingClock(STEP), outcomes), lines));
    expect(report.status, lines.join('')).toBe('ok');
    expect(outcomes[0]!.renewals).toBeUndefined();
    expect(report.snapshotRenewals).toBe(0);
    expect(await storedReads(client, config.offsetKey)).toHaveLength(1); // 15 batches in one snapshot
    expect(report.deletedRows).toBe(3000);
    expect(await count(client, 'true')).toBe(0);
    expect(exportedDocs(out)).toEqual(expected);
    expect(lines.filter((l) => l.includes('source.maxSnapshotAge does not apply with delete: true'))).toHaveLength(1);
    // Not set: no warning (the default applies to every other run).
    const quiet: string[] = [];
    const unset = configOf({ url, maxSnapshotAge: null }, { delete: true, logExporters: [{ id: 'files', type: 'file', directory: out }] });
    await runExport(unset, options(inProcessPool(steppingClock(STEP), []), quiet));
    expect(quiet.join('')).not.toContain('maxSnapshotAge');
  }, 120_000);

  it('distributed: the coordinator records each renewed snapshot\'s range from the stored outcome; late rows caught once', async () => {
    const { url, client, u } = await withOpenInterleavedRows('snapage_dist');
    const out = path.join(tempDir('snapage-dist'), 'out');
    const config = configOf({ url, ordered: true }, {
      offsetKey: 'age-dist', queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' }, logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const first = await runDistributed(config, options(inProcessPool(steppingClock(STEP), outcomes), lines), emptyReport(config), { wait: true, work: true });
    await u.query('COMMIT');
    expect(first.status, lines.join('')).toBe('ok');
    const renewals = outcomes[0]!.renewals!;
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    expect(first.snapshotRenewals).toBe(renewals.length);
    expect(first.oldestSnapshotMs).toBeLessThanOrEqual(MINUTE + STEP);
    const reads = await storedReads(client, config.offsetKey);
    expect(reads.map((r) => r.snapshot)).toEqual([outcomes[0]!.snapshot, ...renewals.map((r) => r.snapshot)]);
    expectContiguous(reads, { lo: first.runs[0]!.window.start, hi: first.runs[0]!.window.end });

    const second = await runDistributed(config, options(inProcessPool(steppingClock(STEP), []), lines), emptyReport(config), { wait: true, work: true });
    expect(second.late.rows).toBe(N);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  }, 180_000);
});

describe('stopping a read to renew its snapshot', () => {
  it('cancels the COPY without a session of its own (a role at its connection limit), and the session goes on', async () => {
    const { url, client } = await freshDatabase('snapage_cancel');
    opened.push(client);
    await client.query("CREATE ROLE snapage_one LOGIN CONNECTION LIMIT 1 PASSWORD 'pw'");
    const { port, database } = (client as unknown as { connectionParameters: { port: number; database: string } }).connectionParameters;
    expect(url).toContain(database);
    const c = await connectTo(`postgres://snapage_one:pw@127.0.0.1:${port}/${database}?sslmode=disable`, opened);
    // A billion rows: drained instead of cancelled, it would not end within the test's time.
    const sql = `SELECT (a * 1000000 + b)::text, now()::timestamp, jsonb_build_object('i', b) FROM generate_series(1, 1000) a, generate_series(1, 1000000) b`;
    let batches = 0;
    for await (const batch of readWithCopy(c, sql, 100)) {
      expect(batch.count).toBe(100);
      if (++batches === 2) break;
    }
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  }, 60_000);
});
