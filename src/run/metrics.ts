import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Pushgateway, Registry } from 'prom-client';
import { tsToMicros, type Bound } from '../plan/keyset.js';
import type { DeliveryEvent } from '../sinks/delivery/types.js';
import type { ShardOutcome } from '../state/types.js';
import type { RunObserver, ShardCounts } from './observer.js';

export type RunStatus = 'running' | 'ok' | 'failed' | 'partial';
const STATUSES: RunStatus[] = ['running', 'ok', 'failed', 'partial'];

/**
 * The run's Prometheus metrics. Labels are only offsetKey, exporter, outcome and reason: nothing
 * per row or per shard. Worker threads' counts arrive over each shard's channel, so these are
 * process totals.
 */
export class RunMetrics implements RunObserver {
  readonly registry = new Registry();
  private readonly rows: Counter<'offsetKey' | 'exporter'>;
  private readonly bytes: Counter<'offsetKey' | 'exporter'>;
  private readonly requests: Counter<'offsetKey' | 'exporter' | 'outcome'>;
  private readonly retries: Counter<'offsetKey' | 'exporter'>;
  private readonly deadLetters: Counter<'offsetKey' | 'exporter' | 'reason'>;
  private readonly shardSeconds: Histogram<'offsetKey'>;
  private readonly offsetTs: Gauge<'offsetKey'>;
  private readonly lastSuccess: Gauge<'offsetKey'>;
  private readonly status: Gauge<'offsetKey' | 'status'>;
  private readonly rowsPlanned: Gauge<'offsetKey'>;
  private readonly rowsDone: Counter<'offsetKey'>;
  private shards: Gauge<'offsetKey' | 'state'> | null = null;
  private cycles: Counter<'offsetKey' | 'outcome'> | null = null;
  /** The offset as Unix seconds, for the lag gauge (read at scrape time). */
  private offsetSeconds: number | null = null;

  constructor(private readonly offsetKey: string, exporterIds: string[]) {
    const registers = [this.registry];
    this.rows = new Counter({ name: 'logship_rows_exported_total', help: 'Rows each exporter confirmed (delivered, not dead-lettered)', labelNames: ['offsetKey', 'exporter'], registers });
    this.bytes = new Counter({ name: 'logship_bytes_exported_total', help: 'Bytes each exporter wrote or sent', labelNames: ['offsetKey', 'exporter'], registers });
    this.requests = new Counter({ name: 'logship_requests_total', help: 'Requests to document-shaped destinations, by outcome (ok, retried, dead_lettered, failed)', labelNames: ['offsetKey', 'exporter', 'outcome'], registers });
    this.retries = new Counter({ name: 'logship_retries_total', help: 'Requests sent again after a retryable answer', labelNames: ['offsetKey', 'exporter'], registers });
    this.deadLetters = new Counter({ name: 'logship_dead_letters_total', help: 'Events dead-lettered, by reason', labelNames: ['offsetKey', 'exporter', 'reason'], registers });
    this.shardSeconds = new Histogram({ name: 'logship_shard_duration_seconds', help: 'Time to export one shard', labelNames: ['offsetKey'], buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800], registers });
    this.offsetTs = new Gauge({ name: 'logship_offset_timestamp_seconds', help: 'The stored offset as a Unix time: time() - this is the export lag', labelNames: ['offsetKey'], registers });
    this.lastSuccess = new Gauge({ name: 'logship_last_success_timestamp_seconds', help: 'When a run last finished successfully', labelNames: ['offsetKey'], registers });
    this.status = new Gauge({ name: 'logship_run_status', help: 'The run status: 1 for the current one', labelNames: ['offsetKey', 'status'], registers });
    this.rowsPlanned = new Gauge({ name: 'logship_rows_planned', help: 'Rows the run planned to export (estimated for large windows)', labelNames: ['offsetKey'], registers });
    this.rowsDone = new Counter({ name: 'logship_rows_done_total', help: 'Rows of finished shards', labelNames: ['offsetKey'], registers });
    // Computed when scraped, not when the offset moves: between cycles (or during an outage) the
    // lag must keep growing on the dashboard, not freeze at its last value.
    const metrics = this;
    new Gauge({
      name: 'logship_lag_seconds', help: 'Now minus the stored offset: every row older than this has been shipped (absent until an offset is known)', labelNames: ['offsetKey'], registers,
      collect() {
        if (metrics.offsetSeconds === null) return;
        this.set({ offsetKey }, Math.max(0, Date.now() / 1000 - metrics.offsetSeconds));
      },
    });
    // Present from the first scrape, so a dashboard sees zeros rather than gaps.
    for (const exporter of exporterIds) {
      this.rows.inc({ offsetKey, exporter }, 0);
      this.bytes.inc({ offsetKey, exporter }, 0);
    }
    this.rowsDone.inc({ offsetKey }, 0);
    this.setStatus('running');
  }

  setStatus(status: RunStatus): void {
    for (const s of STATUSES) this.status.set({ offsetKey: this.offsetKey, status: s }, s === status ? 1 : 0);
    if (status === 'ok') this.lastSuccess.set({ offsetKey: this.offsetKey }, Date.now() / 1000);
  }

  planned(rows: number): void {
    this.rowsPlanned.inc({ offsetKey: this.offsetKey }, rows);
  }

  shardDone(outcome: ShardOutcome, seconds: number): void {
    this.rowsDone.inc({ offsetKey: this.offsetKey }, outcome.rows);
    this.shardExported(outcome, seconds);
  }

  shardExported(outcome: ShardOutcome, seconds: number): void {
    const offsetKey = this.offsetKey;
    this.shardSeconds.observe({ offsetKey }, seconds);
    for (const e of outcome.exporters) {
      this.rows.inc({ offsetKey, exporter: e.exporterId }, e.rows);
      this.bytes.inc({ offsetKey, exporter: e.exporterId }, e.bytes);
    }
  }

  shardRecorded(rows: number): void {
    this.rowsDone.inc({ offsetKey: this.offsetKey }, rows);
  }

  shardStates(counts: ShardCounts): void {
    // Registered on first use: only a distributed coordinator has a queue to report.
    this.shards ??= new Gauge({ name: 'logship_shards', help: 'Distributed run: its shards by state (queued, running, done, failed)', labelNames: ['offsetKey', 'state'], registers: [this.registry] });
    for (const [state, n] of Object.entries(counts)) this.shards.set({ offsetKey: this.offsetKey, state }, n);
  }

  offset(bound: Bound): void {
    this.offsetSeconds = tsToMicros(bound.ts) / 1e6;
    this.offsetTs.set({ offsetKey: this.offsetKey }, this.offsetSeconds);
  }

  /** `run --follow`: a cycle ended, ok, partial (stopped) or failed (it is retried after a backoff). */
  cycleEnded(outcome: RunStatus): void {
    // Registered on first use: only --follow runs cycles.
    this.cycles ??= new Counter({ name: 'logship_cycles_total', help: 'run --follow: cycles by outcome (ok, partial, failed); failed ones are retried after a backoff', labelNames: ['offsetKey', 'outcome'], registers: [this.registry] });
    this.cycles.inc({ offsetKey: this.offsetKey, outcome });
  }

  delivery(exporter: string, event: DeliveryEvent): void {
    const offsetKey = this.offsetKey;
    if (event.kind === 'request') {
      this.requests.inc({ offsetKey, exporter, outcome: event.outcome });
      if (event.outcome === 'retried') this.retries.inc({ offsetKey, exporter });
    } else {
      this.requests.inc({ offsetKey, exporter, outcome: 'dead_lettered' }, event.count);
      this.deadLetters.inc({ offsetKey, exporter, reason: event.reason }, event.count);
    }
  }
}

/** `--metrics-port`: serves /metrics for as long as the process lives. */
export async function serveMetrics(metrics: RunMetrics, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  server.unref();
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/**
 * `--pushgateway URL`: the Prometheus convention for batch jobs, grouped by offsetKey, and by
 * `instance` too for a distributed worker: a push replaces its whole group, so each worker
 * process needs its own or they would overwrite each other's counts.
 */
export function pushTo(url: string, metrics: RunMetrics, offsetKey: string, instance?: string): () => Promise<void> {
  const gateway = new Pushgateway(url, {}, metrics.registry);
  const groupings: Record<string, string> = instance === undefined ? { offsetKey } : { offsetKey, instance };
  return async () => {
    await gateway.push({ jobName: 'logship', groupings });
  };
}
