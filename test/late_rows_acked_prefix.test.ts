import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import pino from 'pino';
import type { Piscina } from 'piscina';
import YAML from 'yaml';
import { loadConfigText } from '../src/config/load.js';
import { resetTestKnobs, setTestKnobs } from '../src/core/knobs.js';
import type { Logger } from '../src/core/log.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { runDistributed } from '../src/run/distributed/coordinator.js';
import { Progress } from '../src/run/progress.js';
import { emptyReport } from '../src/run/report.js';
import { runExport } from '../src/run/run.js';
import { closeShardSession, exportShard, type ShardTaskInput } from '../src/shard/export_shard.js';
import type { Config } from '../src/shard/config.js';
import type { SnapshotClock } from '../src/shard/snapshot_age.js';
import type { InShardAck } from '../src/sinks/delivery/types.js';
import { parseSnapshot } from '../src/source/snapshots.js';
import type { ReadRange, ShardOutcome } from '../src/state/types.js';
import { exportedDocs, tempDir } from './helpers/cli.js';
import { connectTo, freshDatabase } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { datadogError, DatadogIntake } from './helpers/platforms/datadog_server.js';

/**
 * A bounded-duplicates exporter (Datadog) acknowledges a prefix of its shard, the attempt fails,
 * and a row is committed into that prefix between the attempt's snapshot and the next one's: the
 * next attempt skips the prefix, so the row can only come as a late row, checked against the
 * snapshot the prefix was read in (the first attempt's), not the retry's, which already saw it.
 */

const API_KEY = 'dd-api-key-acked-prefix-0123456789';
const SECOND = 1000;
const ROWS = 1000;
/** Requests of CHUNK rows, one at a time: the prefix acknowledged before the failure is exact. */
const CHUNK = 100;
/** The request holding this row (the sixth) fails: rows 0-499 are acknowledged before it. */
const FAILING_ROW = 500;
/** Late rows, at x.5 s after rows 100-104: inside the acknowledged prefix. */
const LATE_ROWS = 5;
const LATE_AFTER_ROW = 100;

const opened: pg.Client[] = [];
let intake: DatadogIntake;
/** A second Datadog exporter's intake, for the case of two exporters with different acknowledged prefixes. */
let intake2: DatadogIntake;
beforeAll(async () => {
  intake = await new DatadogIntake(API_KEY).start();
  intake2 = await new DatadogIntake(API_KEY).start();
});
afterAll(async () => {
  await closeShardSession();
  await Promise.all(opened.map((c) => c.end()));
  await intake.stop();
  await intake2.stop();
});

function logger(lines: string[]): Logger {
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(chunk.toString()); done(); } });
  return pino({ level: 'info', base: undefined }, sink) as unknown as Logger;
}

/**
 * Exports in this thread, one shard at a time, so that `beforeAttempt` runs between two attempts
 * at a shard (the first call is attempt 1): the test commits its late transaction there.
 */
function inProcessPool(outcomes: ShardOutcome[], beforeAttempt: (n: number, task: ShardTaskInput) => Promise<void>): Piscina {
  let attempts = 0;
  return {
    run: async (task: ShardTaskInput) => {
      await beforeAttempt(++attempts, task);
      const outcome = await exportShard(task);
      outcomes.push(outcome);
      return outcome;
    },
  } as unknown as Piscina;
}

/** The pool whose second attempt starts after `late` commits: after attempt 1's snapshot, before attempt 2's. */
function committingBetweenAttempts(late: pg.Client, outcomes: ShardOutcome[] = []): Piscina {
  return inProcessPool(outcomes, async (n) => {
    if (n === 2) await late.query('COMMIT');
  });
}

function options(pool: Piscina, lines: string[]) {
  const log = logger(lines);
  return { log, pool, progress: new Progress({ tty: false, intervalMs: 3_600_000, stream: process.stderr, log }) };
}

/** A Datadog exporter sending to `to`, CHUNK rows a request, one at a time, never retrying a request. */
function datadog(id: string, to: DatadogIntake): Record<string, unknown> {
  const deadLetter = path.join(tempDir('acked-prefix'), 'dead');
  return { id, type: 'datadog', basePath: to.url, apiKey: API_KEY, chunk: CHUNK, concurrency: 1, maxAttempts: 1, minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter };
}

function configOf(url: string, rest: Record<string, unknown>): Config {
  return loadConfigText(YAML.stringify({
    source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, rowsPerShard: 100_000,
    logExporters: [datadog('dd', intake)],
    ...rest,
  }), { secrets: { env: {}, secretsDir: undefined } });
}

/** A whole second, `seconds` ago: rows seeded one a second from it have no fraction of a second. */
function wholeSecondsAgo(seconds: number): string {
  return new Date(Math.floor(Date.now() / SECOND) * SECOND - seconds * SECOND).toISOString();
}

async function keysInOrder(client: pg.Client): Promise<string[]> {
  return (await client.query<{ key: string }>('SELECT key FROM logs ORDER BY "timestamp", key COLLATE "C"')).rows.map((r) => r.key);
}

async function storedReads(client: pg.Client, offsetKey: string): Promise<ReadRange[]> {
  return (await client.query<{ reads: ReadRange[] }>('SELECT reads FROM logship_state WHERE offset_key = $1', [offsetKey])).rows[0]!.reads;
}

/**
 * ROWS rows, one a second, inside the late-row horizon; a transaction opened now (so before any
 * read's snapshot) holding LATE_ROWS rows inside what will be the acknowledged prefix, not yet
 * committed; and the request holding row FAILING_ROW answered once with a 500, which fails the
 * attempt (maxAttempts: 1) after rows 0-499 were acknowledged.
 */
async function ackedPrefixCase(name: string): Promise<{ url: string; client: pg.Client; late: pg.Client; lateKeys: string[]; lateXid: bigint }> {
  const { url, client } = await freshDatabase(name);
  opened.push(client);
  const start = wholeSecondsAgo(ROWS + 300);
  await seedKestraLogs(client, { rows: ROWS, start, spanSeconds: ROWS, tieGroup: 1 });
  const failing = (await keysInOrder(client))[FAILING_ROW]!;
  const late = await connectTo(url, opened);
  await late.query('BEGIN');
  const lateStart = new Date(Date.parse(start) + LATE_AFTER_ROW * SECOND + 500).toISOString();
  await seedKestraLogs(late, { rows: LATE_ROWS, start: lateStart, spanSeconds: LATE_ROWS, tieGroup: 1, seq: 1_000_000 });
  const lateKeys = (await late.query<{ key: string }>('SELECT key FROM logs WHERE xmin::text = txid_current()::text')).rows.map((r) => r.key);
  expect(lateKeys).toHaveLength(LATE_ROWS);
  const lateXid = BigInt((await late.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0]!.x);
  intake.logs.length = 0;
  intake.requests.length = 0;
  intake.failNext([datadogError(500, 'Internal Server Error', 'try again')], (r) => r.body.includes(failing));
  return { url, client, late, lateKeys, lateXid };
}

/** Every source row reached Datadog exactly once. */
async function expectExactlyOnce(client: pg.Client): Promise<void> {
  expect(compareKeys(await keysInOrder(client), intake.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
}

/**
 * The ledger holds the acknowledged prefix (up to the row the failed attempt acknowledged last)
 * with a snapshot that did not see the late transaction, the rest with the retry's.
 */
async function expectPrefixRecordedApart(client: pg.Client, reads: ReadRange[], retrySnapshot: string, lateXid: bigint, lateKeys: string[]): Promise<void> {
  const acked = (await keysInOrder(client)).filter((k) => !lateKeys.includes(k))[FAILING_ROW - 1]!;
  const ts = (await client.query<{ ts: string }>(`SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs WHERE key = $1`, [acked])).rows[0]!.ts;
  expect(reads).toHaveLength(2);
  expect(reads[1]!.lo).toEqual({ ts, key: acked });
  expect(reads[0]!.hi).toEqual(reads[1]!.lo);
  expect(reads[1]!.snapshot).toBe(retrySnapshot);
  const first = parseSnapshot(reads[0]!.snapshot);
  expect(first.xip.includes(lateXid) || lateXid >= first.xmax).toBe(true);
  const retry = parseSnapshot(retrySnapshot);
  expect(retry.xip.includes(lateXid) || lateXid >= retry.xmax).toBe(false);
}

describe('a row committed late into an acknowledged prefix, then the shard retried or resumed', () => {
  it('in-run retry: the retry skips the prefix, the next run catches the row up as late (against the first attempt\'s snapshot): every row exactly once', async () => {
    const { url, client, late, lateKeys, lateXid } = await ackedPrefixCase('acked_prefix_retry');
    const config = configOf(url, { offsetKey: 'acked-retry', shardAttempts: 2 });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const pool = committingBetweenAttempts(late, outcomes);
    const first = await runExport(config, options(pool, lines));
    intake.assertFaultsDelivered();
    expect(first.status, lines.join('')).toBe('ok');
    expect(lines.join('')).toContain('shard failed; retrying it');
    expect(outcomes).toHaveLength(1); // the first attempt failed, the retry returned
    // The retry resumed after the acknowledged prefix: the late rows, inside it, were not sent.
    expect(intake.keys().filter((k) => lateKeys.includes(k))).toEqual([]);
    const ledger = await storedReads(client, config.offsetKey);

    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    await expectExactlyOnce(client);
    expect(second.late.rows).toBe(LATE_ROWS);
    await expectPrefixRecordedApart(client, ledger, outcomes[0]!.snapshot!, lateXid, lateKeys);
    const third = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(third.late.rows + third.rows).toBe(0);
  }, 120_000);

  it('cross-run resume: a run fails after the ack, the rerun resumes after the prefix and catches the row up as late: every row exactly once', async () => {
    const { url, client, late, lateKeys } = await ackedPrefixCase('acked_prefix_resume');
    const config = configOf(url, { offsetKey: 'acked-resume', shardAttempts: 1 });
    const lines: string[] = [];
    await expect(runExport(config, options(inProcessPool([], async () => {}), lines))).rejects.toThrow(/gave up after 1 attempts/);
    intake.assertFaultsDelivered();
    const stored = await client.query<{ ack: { ts: string; reads?: unknown[] } }>('SELECT ack FROM logship_state_acks');
    expect(stored.rows).toHaveLength(1);
    await late.query('COMMIT');

    const outcomes: ShardOutcome[] = [];
    const second = await runExport(config, options(inProcessPool(outcomes, async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    expect(second.runs[0]!.resumed).toBe(true);
    await expectExactlyOnce(client);
    expect(second.late.rows).toBe(LATE_ROWS);
    const third = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(third.late.rows + third.rows).toBe(0);
    expect(intake.keys().filter((k) => lateKeys.includes(k))).toHaveLength(LATE_ROWS);
  }, 120_000);

  it('an ack stored without its snapshot (an older logship) still resumes: the prefix is checked against the run\'s snapshot, older than any attempt\'s', async () => {
    const { url, client, late } = await ackedPrefixCase('acked_prefix_legacy');
    const config = configOf(url, { offsetKey: 'acked-legacy', shardAttempts: 1 });
    const lines: string[] = [];
    await expect(runExport(config, options(inProcessPool([], async () => {}), lines))).rejects.toThrow(/gave up after 1 attempts/);
    intake.assertFaultsDelivered();
    // As an older version stored it: no snapshot with the ack.
    const legacy = await client.query(`UPDATE logship_state_acks SET ack = ack - 'reads'`);
    expect(legacy.rowCount).toBe(1);
    await late.query('COMMIT');
    const sentBefore = intake.logs.length;

    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    await expectExactlyOnce(client);
    // Resumed after the prefix (not resent from the shard's start): the rest of the shard, then the late rows.
    expect(intake.logs.length - sentBefore).toBe(ROWS - FAILING_ROW + LATE_ROWS);
  }, 120_000);

  it('delete: true: the retry\'s delete keeps the rows committed into the skipped prefix; the next run exports and deletes them: every row exactly once', async () => {
    const { url, client, late } = await ackedPrefixCase('acked_prefix_delete');
    const expected = await keysInOrder(client);
    const config = configOf(url, { offsetKey: 'acked-delete', shardAttempts: 2, delete: true });
    const lines: string[] = [];
    const first = await runExport(config, options(committingBetweenAttempts(late), lines));
    intake.assertFaultsDelivered();
    expect(first.status, lines.join('')).toBe('ok');
    expect(first.deletedRows).toBe(ROWS);
    const lateKeys = await keysInOrder(client);
    expect(lateKeys).toHaveLength(LATE_ROWS); // never sent: kept for the catch-up

    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    expect(second.late.rows).toBe(LATE_ROWS);
    expect(await keysInOrder(client)).toEqual([]);
    expect(compareKeys([...expected, ...lateKeys], intake.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  }, 120_000);

  it('a catch-up read by a scan, retried after an ack: its range splits at the acknowledged row, and rows committed into the prefix between its attempts come in the next run: every row exactly once', async () => {
    const { url, client } = await freshDatabase('acked_prefix_catch_up');
    opened.push(client);
    const start = wholeSecondsAgo(ROWS + 300);
    await seedKestraLogs(client, { rows: ROWS, start, spanSeconds: ROWS, tieGroup: 1 });
    intake.logs.length = 0;
    const config = configOf(url, { offsetKey: 'acked-catch-up', shardAttempts: 2 });
    const lines: string[] = [];
    expect((await runExport(config, options(inProcessPool([], async () => {}), lines))).status, lines.join('')).toBe('ok');
    // 300 late rows (x.25 s after rows 100-399), more than are looked up by key: the catch-up scans.
    const lateStart = Date.parse(start) + 100 * SECOND;
    await seedKestraLogs(client, { rows: 300, start: new Date(lateStart + 250).toISOString(), spanSeconds: 300, tieGroup: 1, seq: 1_000_000 });
    const caughtUp = (await client.query<{ key: string }>(`SELECT key FROM logs WHERE (extract(milliseconds FROM "timestamp")::int % 1000) = 250 ORDER BY "timestamp", key COLLATE "C"`)).rows.map((r) => r.key);
    expect(caughtUp).toHaveLength(300);
    // Open before the catch-up's first attempt, committed before its retry: 5 rows after late row 50, inside its acknowledged prefix (late rows 0-199).
    const late = await connectTo(url, opened);
    await late.query('BEGIN');
    await seedKestraLogs(late, { rows: LATE_ROWS, start: new Date(lateStart + 50 * SECOND + 750).toISOString(), spanSeconds: LATE_ROWS, tieGroup: 1, seq: 2_000_000 });
    intake.failNext([datadogError(500, 'Internal Server Error', 'try again')], (r) => r.body.includes(caughtUp[200]!));
    setTestKnobs({ maxKeyedLateRows: 10 });
    try {
      const outcomes: ShardOutcome[] = [];
      const second = await runExport(config, options(committingBetweenAttempts(late, outcomes), lines));
      intake.assertFaultsDelivered();
      expect(second.status, lines.join('')).toBe('ok');
      // Rows read: the retry read its whole range again but the 5 rows committed into the prefix
      // after the first attempt's snapshot (left out for the next run's catch-up).
      expect(second.late.rows).toBe(300);
      const ledger = await storedReads(client, config.offsetKey);

      const third = await runExport(config, options(inProcessPool([], async () => {}), lines));
      await expectExactlyOnce(client);
      expect(third.late.rows).toBe(LATE_ROWS);
      // The caught-up range became two: up to the acknowledged late row in the catch-up's first
      // attempt's snapshot, from it on in the retry's. The second run's empty window extended the
      // range after its catch-up was planned: that part, which no catch-up read, follows in the
      // range's own snapshot.
      expect(ledger.map((r) => r.id)).toEqual([ledger[0]!.id, `${ledger[0]!.id}-late1-r1`, `${ledger[0]!.id}-x1`]);
      expect(ledger[1]!.lo.key).toBe(caughtUp[199]);
      expect(ledger[1]!.snapshot).toBe(outcomes[0]!.snapshot);
      expect(ledger.slice(0, 2).every((r) => r.late === 1)).toBe(true);
      expect(ledger[2]!.lo).toEqual(ledger[1]!.hi);
      expect(ledger[2]!.late).toBe(0);
    } finally {
      resetTestKnobs();
    }
  }, 120_000);

  it('distributed: the worker\'s retry of the shard after an ack records the prefix with the first attempt\'s snapshot: every row exactly once', async () => {
    const { url, client, late, lateKeys, lateXid } = await ackedPrefixCase('acked_prefix_dist');
    const config = configOf(url, { offsetKey: 'acked-dist', shardAttempts: 2, queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' } });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const pool = committingBetweenAttempts(late, outcomes);
    const first = await runDistributed(config, options(pool, lines), emptyReport(config), { wait: true, work: true });
    intake.assertFaultsDelivered();
    expect(first.status, lines.join('')).toBe('ok');
    expect(outcomes).toHaveLength(1);
    const ledger = await storedReads(client, config.offsetKey);

    const second = await runDistributed(config, options(inProcessPool([], async () => {}), lines), emptyReport(config), { wait: true, work: true });
    await expectExactlyOnce(client);
    expect(second.late.rows).toBe(LATE_ROWS);
    await expectPrefixRecordedApart(client, ledger, outcomes[0]!.snapshot!, lateXid, lateKeys);
  }, 180_000);

  /**
   * The retry's read, in COPY and by cursor; with `delete: true` (the retry deletes what it read
   * and leaves the rest to the catch-up); and renewing its snapshot inside the prefix, where more
   * rows commit into the prefix between its first snapshot and the renewed one (the renewed
   * statement must leave those out too).
   */
  const fileCases = [
    { name: 'COPY', stream: 'copy', delete: false, renewInPrefix: false },
    { name: 'cursor', stream: 'cursor', delete: false, renewInPrefix: false },
    { name: 'delete: true', stream: 'copy', delete: true, renewInPrefix: false },
    { name: 'a renewal inside the prefix', stream: 'copy', delete: false, renewInPrefix: true },
  ] as const;
  it.each(fileCases)('a file exporter beside Datadog ($name): the retry rewrites the whole shard for it but leaves out the rows committed into Datadog\'s skipped prefix since that prefix\'s snapshot; the next run catches them up for both: every row once in the files and once at the intake', async (c) => {
    const { url, client, late, lateKeys } = await ackedPrefixCase(`acked_prefix_file_${c.stream}_${c.delete ? 'delete' : 'keep'}_${c.renewInPrefix ? 'renew' : 'once'}`);
    // Documents to keys, read before any delete (the late transaction sees its own rows).
    const docs = new Map((await late.query<{ key: string; doc: string }>('SELECT key, value::text AS doc FROM logs')).rows.map((r) => [r.doc, r.key]));
    const files = path.join(tempDir('acked-prefix-files'), 'out');
    const config = configOf(url, {
      source: { url, fetchSize: 100, stream: c.stream, ...(c.renewInPrefix ? { maxSnapshotAge: 'PT1M' } : {}) },
      offsetKey: `acked-file-${c.stream}`, shardAttempts: 2, delete: c.delete,
      logExporters: [datadog('dd', intake), { id: 'files', type: 'file', directory: files }],
    });
    // Committed during the retry, into the prefix (x.5 s after rows 150-152), where it renews.
    const renewalKeys: string[] = [];
    const renewingClock = (): SnapshotClock => {
      let readings = 0;
      return async () => {
        // The snapshot's first reading, then the one after the first batch (rows 0-99): past the
        // limit, so the read renews there; every later reading returns the same, so it renews once.
        if (++readings === 1) return 0;
        if (readings === 2) {
          const start = Date.parse((await client.query<{ t: Date }>(`SELECT min("timestamp") AS t FROM logs`)).rows[0]!.t.toISOString());
          await seedKestraLogs(client, { rows: 3, start: new Date(start + 150 * SECOND + 500).toISOString(), spanSeconds: 3, tieGroup: 1, seq: 2_000_000 });
          for (const r of (await client.query<{ key: string; doc: string }>('SELECT key, value::text AS doc FROM logs WHERE key <> ALL($1)', [[...docs.values()]])).rows) {
            docs.set(r.doc, r.key);
            renewalKeys.push(r.key);
          }
        }
        return 10 * 60 * SECOND;
      };
    };
    const lines: string[] = [];
    const outcomes: ShardOutcome[] = [];
    const first = await runExport(config, options(inProcessPool(outcomes, async (n, task) => {
      if (n !== 2) return;
      await late.query('COMMIT');
      if (c.renewInPrefix) task.clock = renewingClock();
    }), lines));
    intake.assertFaultsDelivered();
    expect(first.status, lines.join('')).toBe('ok');
    expect(lines.join('')).toContain('shard failed; retrying it');
    if (c.renewInPrefix) {
      expect(renewalKeys).toHaveLength(3);
      expect(outcomes[0]!.renewals).toHaveLength(1);
    }
    const expected = [...docs.values()];
    const inFiles = () => exportedDocs(files).map((d) => docs.get(d) ?? `unknown document ${d.slice(0, 80)}`);
    // The retry's snapshot saw the late rows, the prefix's did not: the file exporter had them left out too.
    expect(inFiles().filter((k) => lateKeys.includes(k) || renewalKeys.includes(k))).toEqual([]);
    if (c.delete) expect((await keysInOrder(client)).sort()).toEqual([...lateKeys].sort()); // kept for the catch-up

    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    expect(second.late.rows).toBe(LATE_ROWS + renewalKeys.length);
    if (c.delete) expect(await keysInOrder(client)).toEqual([]);
    expect(compareKeys(expected, intake.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(compareKeys(expected, inFiles())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  }, 120_000);

  it.each([
    { name: 'late rows off', horizon: 'PT0S' },
    // The prefix (rows 0-499) ends about 13 minutes ago, the shard about 5.
    { name: 'the prefix ends before the horizon', horizon: 'PT10M' },
  ])('a file exporter beside Datadog, no catch-up to come ($name): the retry leaves nothing out, so the files have every row once (Datadog lacks the rows committed into its skipped prefix)', async (c) => {
    const { url, client, late, lateKeys } = await ackedPrefixCase(`acked_prefix_file_no_catch_up_${c.horizon}`);
    const files = path.join(tempDir('acked-prefix-files'), 'out');
    const config = configOf(url, {
      offsetKey: 'acked-file-no-catch-up', shardAttempts: 2, lateRows: { horizon: c.horizon },
      logExporters: [datadog('dd', intake), { id: 'files', type: 'file', directory: files }],
    });
    const lines: string[] = [];
    const first = await runExport(config, options(committingBetweenAttempts(late), lines));
    intake.assertFaultsDelivered();
    expect(first.status, lines.join('')).toBe('ok');
    expect(lines.join('')).toContain('shard failed; retrying it');
    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.late.rows + second.rows).toBe(0);
    const docs = new Map((await client.query<{ key: string; doc: string }>('SELECT key, value::text AS doc FROM logs')).rows.map((r) => [r.doc, r.key]));
    const inFiles = exportedDocs(files).map((d) => docs.get(d) ?? `unknown document ${d.slice(0, 80)}`);
    const source = await keysInOrder(client);
    expect(compareKeys(source, inFiles)).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(compareKeys(source, intake.keys())).toEqual({ missing: source.filter((k) => lateKeys.includes(k)), unexpected: [], duplicates: 0 });
  }, 120_000);

  it('two Datadog exporters resume after different acknowledged prefixes, the late rows inside the longer one only: the shorter one\'s rerun leaves them out, and the catch-up sends them to both once', async () => {
    const { url, client, late, lateKeys } = await ackedPrefixCase('acked_prefix_two');
    intake2.logs.length = 0;
    const config = configOf(url, { offsetKey: 'acked-two', shardAttempts: 1, logExporters: [datadog('dd', intake), datadog('dd2', intake2)] });
    const lines: string[] = [];
    await expect(runExport(config, options(inProcessPool([], async () => {}), lines))).rejects.toThrow(/gave up after 1 attempts/);
    intake.assertFaultsDelivered();
    // How far dd2 got before dd's failure stopped the attempt depends on timing: set it to a
    // prefix that ends before the late rows (rows 0-49, as if dd2 had delivered those only).
    const shorter = (await keysInOrder(client)).filter((k) => !lateKeys.includes(k)).slice(0, 50);
    const acked = await client.query<{ run_id: string; shard_index: number; ack: InShardAck }>(`SELECT run_id, shard_index, ack FROM logship_state_acks WHERE offset_key = $1 AND exporter_id = 'dd'`, [config.offsetKey]);
    expect(acked.rows).toHaveLength(1);
    const { run_id: runId, shard_index: shardIndex, ack } = acked.rows[0]!;
    expect(ack.reads).toBeDefined();
    const ts = (await client.query<{ ts: string }>(`SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts FROM logs WHERE key = $1`, [shorter.at(-1)])).rows[0]!.ts;
    const shorterAck: InShardAck = { ...ack, ts, key: shorter.at(-1)!, delivered: shorter.length };
    await client.query(
      `INSERT INTO logship_state_acks (offset_key, run_id, shard_index, exporter_id, ack) VALUES ($1, $2, $3, 'dd2', $4)
       ON CONFLICT (offset_key, run_id, shard_index, exporter_id) DO UPDATE SET ack = EXCLUDED.ack`,
      [config.offsetKey, runId, shardIndex, JSON.stringify(shorterAck)],
    );
    const kept = intake2.logs.filter((l) => shorter.includes(l['logship_key'] as string));
    intake2.logs.splice(0, intake2.logs.length, ...kept);
    expect(intake2.keys().sort()).toEqual([...shorter].sort());
    await late.query('COMMIT');

    const second = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(second.status, lines.join('')).toBe('ok');
    expect(second.runs[0]!.resumed).toBe(true);
    // dd2 read on from row 49 through dd's prefix in a snapshot that saw the late rows, which it
    // left out; the rerun's late check then sent them to both.
    expect(second.late.rows).toBe(LATE_ROWS);
    await expectExactlyOnce(client);
    expect(compareKeys(await keysInOrder(client), intake2.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const third = await runExport(config, options(inProcessPool([], async () => {}), lines));
    expect(third.late.rows + third.rows).toBe(0);
  }, 120_000);
});
