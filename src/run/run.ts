import { RunReport, RunOptions, emptyReport, finishReport } from './report.js';

import type pg from 'pg';
import type { Config } from '../shard/config.js';

import { Runner } from './runner.js';

import { StopControl } from './stop.js';

/**
 * One run: open (Runner.open), one cycle, close. Fills `report` as it goes, so a failed run still
 * reports what it got done.
 */
export async function runExport(wanted: Config, o: RunOptions, report: RunReport = emptyReport(wanted)): Promise<RunReport> {
  const started = Date.now();
  const stop = o.stop ?? new StopControl({ maxDurationMs: wanted.maxDurationMs, stopGraceMs: wanted.stopGraceMs });
  let runner: Runner | null = null;
  try {
    runner = await Runner.open(wanted, o);
    return await runner.cycle({ ...o, stop }, report);
  } finally {
    // The cycle stopped the progress; an open that failed never started it.
    finishReport(report, started);
    await runner?.close(o.log, report);
  }
}

export { addOutcome } from './execute.js';
