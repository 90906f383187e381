import fs from 'node:fs';
import { errorMessage } from '../config/errors.js';
import { redact } from '../config/secrets.js';
import type { Config } from '../config/types.js';
import { Progress } from '../run/progress.js';
import { emptyReport, runExport, type RunReport } from '../run/run.js';
import { log } from '../util/log.js';
import { formatBound, formatBytes, formatCount } from './format.js';

export interface RunCommandOptions {
  report?: string;
  progressIntervalMs: number;
  quiet?: boolean;
}

export async function runCommand(config: Config, o: RunCommandOptions): Promise<RunReport> {
  const progress = new Progress({ tty: !o.quiet && process.stderr.isTTY === true, intervalMs: o.progressIntervalMs, stream: process.stderr, log, everyUpdate: process.env.LOGSHIP_TEST_PROGRESS_EVERY_BATCH === '1' });
  const report = emptyReport(config);
  try {
    await runExport(config, { log, progress }, report);
    if (!o.quiet) process.stdout.write(summary(report));
    log.info({ ...report, exporters: undefined, runs: undefined }, 'run finished');
    return report;
  } catch (err) {
    report.status = 'failed';
    report.error = errorMessage(err);
    throw err;
  } finally {
    // Written on failure too: status "failed", the error, and what was finished before it.
    if (o.report) fs.writeFileSync(o.report, `${redact(JSON.stringify(report, null, 2))}\n`);
  }
}

function summary(r: RunReport): string {
  const secs = (r.durationMs / 1000).toFixed(1);
  const lines = [
    `logship: exported ${formatCount(r.rows)} rows in ${secs} s (${formatCount(r.rowsPerSec)} rows/s) to ${formatCount(r.files)} files, ${formatBytes(r.bytes)}`,
  ];
  for (const [id, t] of Object.entries(r.exporters)) {
    lines.push(`  ${id}: ${formatCount(t.rows)} rows, ${formatCount(t.files)} files, ${formatBytes(t.bytes)}${t.removedStaleParts ? `, ${t.removedStaleParts} stale parts removed` : ''}${t.deadLettered ? `, ${t.deadLettered} dead-lettered` : ''}`);
  }
  for (const run of r.runs) {
    lines.push(`  run ${run.runId}${run.resumed ? ' (resumed)' : ''}: ${run.shardsExportedNow}/${run.shards} shards, ${formatCount(run.rows)} rows`);
  }
  if (r.deletedRows !== null) lines.push(`  deleted from source: ${formatCount(r.deletedRows)} rows`);
  lines.push(`  offset: ${formatBound(r.offsetBefore)} -> ${formatBound(r.offsetAfter)}`);
  return `${lines.join('\n')}\n`;
}
