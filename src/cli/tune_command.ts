import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../shard/config.js';
import { connectSource } from '../source/connection.js';
import { fixedDb } from '../source/session.js';
import { describeTable } from '../source/table.js';
import { createStateStore } from '../state/create.js';
import { formatCount } from '../core/format.js';
import { HISTORY_START, locateSample, type TuneSample } from './tune_sample.js';
import { median, runTrial, sweep, type Setting, type TrialResult } from './tune_trials.js';

/** sampleRows: a fixed sample size; undefined sizes it from a first measured rate. */
export interface TuneOptions { sampleRows: number | undefined; json: boolean }

/**
 * The default sample: at least this many rows, and enough for about TRIAL_SECONDS of reading at
 * the rate a first trial of MIN_SAMPLE rows measured. A trial pays fixed costs a run pays once
 * (pool start-up, planning and, where reads cannot use an index on the timestamp, one scan of
 * the whole table per shard whatever the window's size): on a 20 k-row sample of a 2 M-row
 * table they were most of the trial, which measured 41 k rows/s where runs did 205–356 k. On a
 * 2 M-row window, 4 s trials (646 k rows) read workers: 2 at 29% under a real run of the window;
 * 8 s trials (1.4 M rows) at 7% under (workers: 1, 13%). The sweep below (9 trials on 2 cores)
 * then takes about a minute.
 */
const MIN_SAMPLE = 200_000;
const TRIAL_SECONDS = 8;
/**
 * Rounds per setting; the setting's figure is the median of its rounds, which drops one slow
 * moment of a shared machine (single trials here varied by ±20% at a load average of 9).
 */
const ROUNDS = 3;
/** Within this share of the fastest, a setting counts as as fast (fewer workers, SWEET_FETCH win). */
const TIE = 0.95;
/**
 * fetchSize barely matters (README, Performance: 5000 is the sweet spot, 1000 costs a few
 * percent, 20000 only memory), so trials spend their time on workers; a configured fetchSize
 * other than this is compared with it at the chosen worker count.
 */
const SWEET_FETCH = 5000;

interface Result extends Setting { rows: number; rowsPerSec: number; runs: number[]; seconds: number; peakRssMiB: number }

/**
 * `logship tune`: exports a sample of the source with each setting, the way `logship run` would,
 * to a temporary directory, and recommends workers and fetchSize. It measures the source,
 * encoding and local writes, not remote destinations; the stored offset is not touched.
 */
export async function tuneCommand(config: Config, o: TuneOptions): Promise<void> {
  const client = await connectSource(config.source, 'tune');
  let connected = true;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-tune-'));
  let n = 0;
  const trial = (window: TuneSample['window']) => (s: Setting): Promise<TrialResult> => {
    const t = runTrial(config, window, s, path.join(work, `trial-${++n}`));
    return o.json ? t : t.then((r) => (process.stderr.write(`  workers=${s.workers} fetchSize=${s.fetchSize}: ${formatCount(r.rowsPerSec)} rows/s (${formatCount(r.rows)} rows in ${r.seconds.toFixed(2)} s)\n`), r));
  };
  try {
    const table = await describeTable(client, config.source);
    const offset = (await (await createStateStore(config, fixedDb(client))).load()).offset;
    let sample = await locateSample(client, table, config, offset, o.sampleRows ?? MIN_SAMPLE);
    let firstRate: number | null = null;
    if (o.sampleRows === undefined && sample.plannedRows >= MIN_SAMPLE * 0.9) {
      // A first trial at the configured setting sizes the sample. Its fixed costs make its rate
      // low, so the later trials take somewhat under TRIAL_SECONDS of reading each.
      if (!o.json) process.stderr.write(`measuring a first rate on ${formatCount(sample.plannedRows)} rows…\n`);
      firstRate = (await trial(sample.window)({ workers: config.workers, fetchSize: config.source.fetchSize })).rowsPerSec;
      const wanted = Math.round(firstRate * TRIAL_SECONDS);
      if (wanted > sample.plannedRows * 1.1) sample = await locateSample(client, table, config, offset, wanted);
    }
    // The trials open their own sessions; this one would only take a connection from them.
    connected = false;
    await client.end();
    if (!o.json) process.stderr.write(`sampling ${describe(sample)}\n`);

    // Workers first, at the configured fetchSize: 1, 2, the cores, twice the cores and the configured count.
    const cores = os.availableParallelism();
    const workerCounts = [...new Set([1, 2, cores, cores * 2, config.workers])].sort((a, b) => a - b);
    const fetch = config.source.fetchSize;
    const byWorkers = await sweep(workerCounts.map((workers) => ({ workers, fetchSize: fetch })), ROUNDS, trial(sample.window));
    const workers = pick([...byWorkers].map(([s, r]) => result(s, r)), (a, b) => a.workers - b.workers).workers;
    // A configured fetchSize other than the sweet spot, against it at that count; the configured
    // one runs again so that both are measured at the same moments.
    const byFetch = fetch === SWEET_FETCH ? new Map<Setting, TrialResult[]>() : await sweep([fetch, SWEET_FETCH].map((fetchSize) => ({ workers, fetchSize })), ROUNDS, trial(sample.window));

    const runs = new Map<string, { s: Setting; r: TrialResult[] }>();
    for (const [s, r] of [...byWorkers, ...byFetch]) {
      const k = `${s.workers}/${s.fetchSize}`;
      runs.set(k, { s, r: [...(runs.get(k)?.r ?? []), ...r] });
    }
    const results = [...runs.values()].map(({ s, r }) => result(s, r)).sort((a, b) => a.workers - b.workers || a.fetchSize - b.fetchSize);
    report(config, sample, firstRate, results, workers, o.json);
  } finally {
    if (connected) await client.end().catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function result(s: Setting, runs: TrialResult[]): Result {
  return {
    ...s, rows: runs[0]!.rows, rowsPerSec: Math.round(median(runs.map((r) => r.rowsPerSec))), runs: runs.map((r) => r.rowsPerSec),
    seconds: Math.round(median(runs.map((r) => r.seconds)) * 100) / 100, peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
  };
}

/** The first, by `prefer`, of the results within TIE of the fastest. */
function pick(results: Result[], prefer: (a: Result, b: Result) => number): Result {
  const best = Math.max(...results.map((r) => r.rowsPerSec));
  return results.filter((r) => r.rowsPerSec >= best * TIE).sort(prefer)[0]!;
}

/** rows: the trials' count once known, else the planner's (~). */
function describe(s: TuneSample, rows?: number): string {
  const from = s.window.start.ts === HISTORY_START.ts ? 'the first row' : s.window.start.ts;
  const what = s.source === 'window'
    ? 'of the window'
    : 'just before now() - safetyLag, reaching back before the window (it holds too few rows) into rows already exported; the stored offset does not move';
  return `${rows === undefined ? `~${formatCount(s.plannedRows)}` : formatCount(rows)} rows ${what}, from ${from} to ${s.window.end.ts}`;
}

function report(config: Config, sample: TuneSample, firstRate: number | null, results: Result[], workers: number, json: boolean): void {
  const fetch = config.source.fetchSize;
  const atWorkers = results.filter((r) => r.workers === workers);
  const recommended = pick(atWorkers, (a, b) => Number(b.fetchSize === SWEET_FETCH) - Number(a.fetchSize === SWEET_FETCH) || b.rowsPerSec - a.rowsPerSec);
  const sweepAtFetch = results.filter((r) => r.fetchSize === fetch);
  const fastest = Math.max(...sweepAtFetch.map((r) => r.rowsPerSec));
  const configured = sweepAtFetch.find((r) => r.workers === config.workers)!;
  const confirmed = configured.rowsPerSec >= fastest * TIE;
  const current = { workers: config.workers, reason: config.workersReason ?? 'set in the config', confirmed };
  // Every trial reads the same range, so the same rows.
  const rows = results[0]!.rows;
  if (json) {
    const range = { source: sample.source, start: sample.window.start.ts === HISTORY_START.ts ? null : sample.window.start, end: sample.window.end, firstRowsPerSec: firstRate };
    process.stdout.write(`${JSON.stringify({ sampleRows: rows, sample: range, results, recommended: { workers: recommended.workers, fetchSize: recommended.fetchSize, rowsPerSec: recommended.rowsPerSec }, current }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`sampled ${describe(sample, rows)}\n`);
  process.stdout.write(`fastest ${formatCount(Math.max(...results.map((r) => r.rowsPerSec)))} rows/s (the median of each setting's trials: ${ROUNDS} a setting, interleaved, each a whole run with its planning)\n`);
  process.stdout.write(`recommended: workers: ${recommended.workers}, source.fetchSize: ${recommended.fetchSize} (${formatCount(recommended.rowsPerSec)} rows/s; within 5% of the fastest, fewer workers are preferred)\n`);
  process.stdout.write(`current workers: ${current.workers} (${current.reason}): ${confirmed ? 'confirmed, within 5% of the fastest' : `slower; set workers: ${workers}`}\n`);
}
