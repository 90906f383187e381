import type { Piscina } from 'piscina';
import type { Config } from '../shard/config.js';
import { CYCLE_BACKOFF, FollowLoop } from '../run/follow.js';
import { emptyReport, finishReport, type RunReport } from '../run/report.js';
import { Runner } from '../run/runner.js';
import { onStopSignals, SIGNAL_EXIT, StopControl } from '../run/stop.js';
import { partitionsByEventTime, writesFiles } from '../sinks/registry.js';
import { log } from '../core/log.js';
import { startMetrics } from './metrics_watch.js';
import { stderrProgress } from './run_command.js';

export interface FollowCommandOptions {
  intervalMs: number;
  /** Longest wait between retries of a failed cycle (the backoff doubles from 1 s up to it). */
  maxBackoffMs?: number;
  progressIntervalMs: number;
  quiet?: boolean;
  metricsPort?: number;
  pushgateway?: string;
  /** The shard pool, started and ended by the caller; it lives across cycles. */
  pool?: Piscina;
}

/**
 * `run --follow`: opens once (session, table, state lock, exporter checks, pool) and runs a cycle
 * every interval until SIGTERM/SIGINT. Returns the exit code: 143/130. A failure at open ends it
 * as a single run's would (2 config, 4 source unavailable: nothing ran yet, so a supervisor's
 * restart is the retry); a failure no retry can fix ends it later (FollowLoop).
 */
export async function followCommand(config: Config, o: FollowCommandOptions): Promise<number> {
  const watch = await startMetrics(config, { metricsPort: o.metricsPort, pushgateway: o.pushgateway, pushIntervalMs: o.progressIntervalMs });
  let runner: Runner | null = null;
  const loop = new FollowLoop({
    intervalMs: o.intervalMs,
    backoff: { ...CYCLE_BACKOFF, maxDelayMs: o.maxBackoffMs ?? CYCLE_BACKOFF.maxDelayMs, firstDelayMs: Math.min(CYCLE_BACKOFF.firstDelayMs, o.maxBackoffMs ?? Infinity) },
    log,
    newStop: () => new StopControl({ maxDurationMs: config.maxDurationMs, stopGraceMs: config.stopGraceMs }),
    cycle: (stop, n) => cycle(runner!, stop, n),
    onCycleFailed: () => {
      watch?.metrics.cycleEnded('failed');
      watch?.metrics.setStatus('failed');
    },
  });
  const stopListening = onStopSignals(loop, {
    log,
    stopping: 'stopping: a cycle in flight stops at its next batch and saves its checkpoint; between cycles logship exits now (send it again to exit at once)',
    exiting: 'exiting at once; the next run resumes from the last checkpoint',
  });

  const cycle = async (r: Runner, stop: StopControl, n: number): Promise<RunReport> => {
    const started = Date.now();
    const report = emptyReport(config);
    // A bar on a terminal; off one, progress lines only for a cycle longer than the progress interval.
    const progress = stderrProgress(o);
    watch?.metrics.setStatus('running');
    await r.cycle({ log, progress, stop, observer: watch?.metrics }, report);
    finishReport(report, started);
    watch?.metrics.cycleEnded(report.status);
    // 'ok' moves logship_last_success_timestamp_seconds.
    watch?.metrics.setStatus(report.status);
    logCycle(n, report);
    return report;
  };

  let status: 'partial' | 'failed' = 'failed';
  try {
    runner = await Runner.open(config, { log, pool: o.pool, follow: true });
    log.info({ offsetKey: config.offsetKey, intervalMs: o.intervalMs }, 'following: a cycle every interval until SIGTERM/SIGINT');
    warnFlatTemplates(config);
    const result = await loop.run();
    status = 'partial';
    log.info({ signal: result.reason, cycles: result.cycles, failedCycles: result.failures }, 'follow stopped');
    return SIGNAL_EXIT[result.reason];
  } finally {
    stopListening();
    await runner?.close(log);
    await watch?.end(status);
  }
}

/**
 * Off a terminal, one line per cycle that shipped something: a day of idle cycles at PT10S would
 * otherwise be 8,640 lines saying nothing. Dead letters are warned of on every cycle that made
 * them (a follow never exits 3: it goes on, and logship_dead_letters_total counts them).
 */
function logCycle(n: number, r: RunReport): void {
  const dead = Object.entries(r.exporters).filter(([, t]) => t.deadLettered > 0).map(([id, t]) => ({ exporter: id, documents: t.deadLettered }));
  if (r.rows > 0 || r.stopped) {
    log.info({ cycle: n, rows: r.rows, files: r.files, bytes: r.bytes, lateRows: r.late.rows, offset: r.offsetAfter, durationMs: r.durationMs, ...(r.stopped ? { stopped: r.stopped } : {}) }, 'cycle shipped');
  }
  if (r.badRows > 0) log.warn({ cycle: n, badRows: r.badRows, deadLetter: r.deadLetter }, 'bad rows (NULL, not UTF-8 or over maxRowBytes) were dead-lettered; every other row was exported');
  if (dead.length > 0) log.warn({ cycle: n, deadLettered: dead }, 'documents were dead-lettered by exporters');
}

/**
 * Every cycle that ships rows writes at least one file per shard: at PT10S a flat template makes
 * thousands of files a day in one directory. Under an event-time partition, a directory holds an
 * hour's cycles. Not changed behind the user's back (names are part of what downstream reads):
 * warned, with the template to use. The object stores' default template is already partitioned.
 */
function warnFlatTemplates(config: Config): void {
  for (const e of config.logExporters) {
    if (!writesFiles(e) || partitionsByEventTime(e)) continue;
    log.warn({ exporter: e.id, keyTemplate: e.keyTemplate }, `--follow writes files every cycle: exporter '${e.id}' names them without an event-time partition, so one directory grows by thousands a day; consider keyTemplate: '{date}/{hour}/{prefix}-{shard}-{part}.{ext}'`);
  }
}
