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
import { parseSnapshot } from '../src/source/snapshots.js';
import type { ReadRange, ShardOutcome } from '../src/state/types.js';
import { tempDir } from './helpers/cli.js';
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
beforeAll(async () => {
  intake = await new DatadogIntake(API_KEY).start();
});
afterAll(async () => {
  await closeShardSession();
  await Promise.all(opened.map((c) => c.end()));
  await intake.stop();
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

function options(pool: Piscina, lines: string[]) {
  const log = logger(lines);
  return { log, pool, progress: new Progress({ tty: false, intervalMs: 3_600_000, stream: process.stderr, log }) };
}

function configOf(url: string, rest: Record<string, unknown>): Config {
  const deadLetter = path.join(tempDir('acked-prefix'), 'dead');
  return loadConfigText(YAML.stringify({
    source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, rowsPerShard: 100_000,
    logExporters: [{ id: 'dd', type: 'datadog', basePath: intake.url, apiKey: API_KEY, chunk: CHUNK, concurrency: 1, maxAttempts: 1, minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter }],
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
    const pool = inProcessPool(outcomes, async (n) => {
      // Between the attempts: the late rows commit after attempt 1's snapshot, before attempt 2's.
      if (n === 2) await late.query('COMMIT');
    });
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
    const first = await runExport(config, options(inProcessPool([], async (n) => {
      if (n === 2) await late.query('COMMIT');
    }), lines));
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
      const second = await runExport(config, options(inProcessPool(outcomes, async (n) => {
        if (n === 2) await late.query('COMMIT');
      }), lines));
      intake.assertFaultsDelivered();
      expect(second.status, lines.join('')).toBe('ok');
      // Rows read: the retry read its whole range again, the 5 rows committed into the prefix too
      // (Datadog skipped them with the prefix).
      expect(second.late.rows).toBe(300 + LATE_ROWS);
      const ledger = await storedReads(client, config.offsetKey);

      const third = await runExport(config, options(inProcessPool([], async () => {}), lines));
      await expectExactlyOnce(client);
      expect(third.late.rows).toBe(LATE_ROWS);
      // The caught-up range became two: up to the acknowledged late row in the catch-up's first
      // attempt's snapshot, from it on in the retry's.
      expect(ledger).toHaveLength(2);
      expect(ledger[1]!.lo.key).toBe(caughtUp[199]);
      expect(ledger[1]!.snapshot).toBe(outcomes[0]!.snapshot);
      expect(ledger.every((r) => r.late === 1)).toBe(true);
    } finally {
      resetTestKnobs();
    }
  }, 120_000);

  it('distributed: the worker\'s retry of the shard after an ack records the prefix with the first attempt\'s snapshot: every row exactly once', async () => {
    const { url, client, late, lateKeys, lateXid } = await ackedPrefixCase('acked_prefix_dist');
    const config = configOf(url, { offsetKey: 'acked-dist', shardAttempts: 2, queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' } });
    const outcomes: ShardOutcome[] = [];
    const lines: string[] = [];
    const pool = inProcessPool(outcomes, async (n) => {
      if (n === 2) await late.query('COMMIT');
    });
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
});
