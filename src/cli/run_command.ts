import { knobs } from '../core/knobs.js';
import fs from 'node:fs';
import type { Piscina } from 'piscina';
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';
import type { Config } from '../shard/config.js';
import { Progress } from '../run/progress.js';
import { emptyReport, type RunReport } from '../run/report.js';
import { runExport } from '../run/run.js';
import { onStopSignals, StopControl } from '../run/stop.js';
import { log } from '../core/log.js';
import { formatBound, formatBytes, formatCount, plural } from '../core/format.js';
import { startMetrics } from './metrics_watch.js';

export interface RunCommandOptions {
  report?: string;
  progressIntervalMs: number;
  quiet?: boolean;
  /** Serve Prometheus /metrics on this port while the run lives (0 = any free port). */
  metricsPort?: number;
  /** Push the metrics to this Prometheus Pushgateway every progress interval and at the end. */
  pushgateway?: string;
  /** Enqueue the shards for `logship worker` processes instead of exporting them here. */
  distributed?: boolean;
  /** With `distributed`: enqueue and exit without waiting for the shards. */
  noWait?: boolean;
  /** With `distributed`: this process also works the shard jobs (coordinator and worker at once). */
  work?: boolean;
  /** A local run's shard pool, started and ended by the caller (runExport's RunOptions.pool). */
  pool?: Piscina;
}

/** Progress on stderr: a bar on a terminal (unless quiet), JSON lines every progressIntervalMs off one. */
export function stderrProgress(o: { quiet?: boolean; progressIntervalMs: number }): Progress {
  return new Progress({ tty: !o.quiet && process.stderr.isTTY === true, intervalMs: o.progressIntervalMs, stream: process.stderr, log, everyUpdate: knobs.progressEveryBatch });
}

export async function runCommand(config: Config, o: RunCommandOptions): Promise<RunReport> {
  const progress = stderrProgress(o);
  const report = emptyReport(config);
  const watch = await startMetrics(config, { metricsPort: o.metricsPort, pushgateway: o.pushgateway, pushIntervalMs: o.progressIntervalMs });
  const stop = new StopControl({ maxDurationMs: config.maxDurationMs, stopGraceMs: config.stopGraceMs });
  // The first signal stops gracefully (running shards stop at their next batch, the checkpoint
  // is saved); a second one exits at once, leaving what a kill -9 leaves: a resumable state.
  const stopListening = onStopSignals(stop, {
    log,
    stopping: 'stopping: running shards stop at their next batch, then the checkpoint is saved (send it again to exit at once)',
    exiting: 'exiting at once; a rerun resumes from the last checkpoint',
  });
  try {
    const options = { log, progress, stop, observer: watch?.metrics };
    if (o.distributed) await (await import('../run/distributed/coordinator.js')).runDistributed(config, options, report, { wait: o.noWait !== true, work: o.work === true });
    else await runExport(config, { ...options, pool: o.pool }, report);
    if (!o.quiet) process.stdout.write(summary(report));
    log.info({ ...report, exporters: undefined, runs: undefined }, 'run finished');
    return report;
  } catch (err) {
    report.status = 'failed';
    report.error = errorMessage(err);
    throw err;
  } finally {
    stopListening();
    // Written on failure too: status "failed", the error, and what was finished before it.
    if (o.report) fs.writeFileSync(o.report, `${redact(JSON.stringify(report, null, 2))}\n`);
    await watch?.end(report.status);
  }
}

function summary(r: RunReport): string {
  const secs = (r.durationMs / 1000).toFixed(1);
  const lines = [
    `logship: exported ${plural(r.rows, 'row')} in ${secs} s (${formatCount(r.rowsPerSec)} rows/s) to ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}`,
  ];
  for (const [id, t] of Object.entries(r.exporters)) {
    lines.push(`  ${id}: ${plural(t.rows, 'row')}, ${plural(t.files, 'file')}, ${formatBytes(t.bytes)}${t.removedStaleParts ? `, ${plural(t.removedStaleParts, 'stale part')} removed` : ''}${t.deadLettered ? `, ${t.deadLettered} dead-lettered` : ''}`);
  }
  for (const run of r.runs) {
    lines.push(`  ${run.kind === 'late' ? 'late catch-up' : 'run'} ${run.runId}${run.resumed ? ' (resumed)' : ''}: ${run.shardsExportedNow}/${plural(run.shards, 'shard')}, ${plural(run.rows, 'row')}`);
  }
  if (r.badRows > 0) lines.push(`  bad rows dead-lettered: ${formatCount(r.badRows)} (in ${r.deadLetter})`);
  if (r.late.rows > 0) lines.push(`  late rows caught up: ${formatCount(r.late.rows)} in ${plural(r.late.rangesCaughtUp, 'range')}`);
  if (r.deletedRows !== null) lines.push(`  deleted from source: ${plural(r.deletedRows, 'row')}`);
  lines.push(`  offset: ${formatBound(r.offsetBefore)} -> ${formatBound(r.offsetAfter)}`);
  if (r.stopped) {
    const why = r.stopped.reason === 'deadline' ? 'at deadline' : `by ${r.stopped.reason}`;
    lines.push(`stopped ${why}: ${r.stopped.shardsLeft} of ${plural(r.stopped.shardsTotal, 'shard')} left; run again to resume`);
  }
  return `${lines.join('\n')}\n`;
}
