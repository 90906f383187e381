import os from 'node:os';
import type { Config } from '../shard/config.js';
import { runWorker, type WorkerReport } from '../run/distributed/worker.js';
import { distributedStatus } from '../run/distributed/status.js';
import { onStopSignals, StopControl } from '../run/stop.js';
import { log } from '../core/log.js';
import { formatBound, formatCount, plural } from '../core/format.js';
import { startMetrics } from './metrics_watch.js';

export interface WorkerCommandOptions {
  concurrency: number;
  idleExitMs: number | null;
  metricsPort?: number;
  pushgateway?: string;
  progressIntervalMs: number;
}

export async function workerCommand(config: Config, o: WorkerCommandOptions): Promise<WorkerReport> {
  const workerId = `${os.hostname()}:${process.pid}`;
  // This process's own counts, pushed under its own instance so workers do not overwrite each other.
  const watch = await startMetrics(config, { metricsPort: o.metricsPort, pushgateway: o.pushgateway, pushIntervalMs: o.progressIntervalMs, instance: workerId });
  const stop = new StopControl({ maxDurationMs: null, stopGraceMs: config.stopGraceMs });
  // The first signal stops taking jobs and stops running shards at their next batch (their jobs
  // are retried); a second exits at once, which the queue handles like a crash (expiry, retry).
  const stopListening = onStopSignals(stop, { log, stopping: 'worker stopping: no new jobs; running shards stop at their next batch and are retried elsewhere' });
  let status: 'ok' | 'failed' = 'failed';
  try {
    const report = await runWorker(config, { log, concurrency: o.concurrency, idleExitMs: o.idleExitMs, stop, workerId, observer: watch?.metrics });
    process.stdout.write(`logship worker ${report.workerId}: ${plural(report.shardsDone, 'shard')}, ${plural(report.rows, 'row')}${report.staleAttempts ? `, ${plural(report.staleAttempts, 'stale attempt')} dropped` : ''}\n`);
    status = 'ok';
    return report;
  } finally {
    stopListening();
    await watch?.end(status);
  }
}

export async function statusCommand(config: Config, json: boolean): Promise<void> {
  const s = await distributedStatus(config);
  if (json) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return;
  }
  const lines = [`offsetKey ${s.offsetKey} (queue ${s.queue})`, `offset: ${formatBound(s.offset)}`];
  if (!s.run) lines.push('no run in progress');
  else {
    const r = s.run;
    const c = r.counts;
    lines.push(`run ${r.runId} (created ${r.createdAt}): ${plural(r.shards, 'shard')}: ${c.done} done, ${c.running} running, ${c.queued} queued, ${c.failed} failed${c['not queued'] ? `, ${c['not queued']} not queued` : ''}`);
    const pct = r.rowsPlanned > 0 ? ` (${Math.min(100, Math.round((r.rowsDone / r.rowsPlanned) * 100))}%)` : '';
    lines.push(`rows: ${formatCount(r.rowsDone)} of ~${formatCount(r.rowsPlanned)}${pct}${r.etaSeconds === null ? '' : `, ETA ${r.etaSeconds} s`}`);
    for (const d of r.detail) {
      if (d.status === 'running') lines.push(`  shard ${d.shard}: running on ${d.worker ?? '?'} (attempt ${d.attempt ?? '?'}, since ${d.since ?? '?'})`);
      else if (d.status === 'failed') lines.push(`  shard ${d.shard}: failed after ${d.retries} retries${d.error ? `: ${d.error}` : ''}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
