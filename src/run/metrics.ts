import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Pushgateway, Registry } from 'prom-client';
import { ConfigError } from '../core/errors.js';
import { tsToMicros, type Bound } from '../core/keyset.js';
import type { DeliveryEvent } from '../sinks/delivery/types.js';
import type { ShardOutcome } from '../state/types.js';
import type { RunObserver, ShardCounts } from './observer.js';

export type RunStatus = 'running' | 'ok' | 'failed' | 'partial';
const STATUSES: RunStatus[] = ['running', 'ok', 'failed', 'partial'];

/**
 * The run's Prometheus metrics. Labels are only offset_key, exporter, outcome and reason: nothing
 * per row or per shard. Worker threads' counts arrive over each shard's channel, so these are
 * process totals. Names follow Prometheus' rules (snake_case, base units as suffixes, counters
 * ending in _total): test/metrics_names.test.ts checks the page.
 */
export class RunMetrics implements RunObserver {
  readonly registry = new Registry();
  private readonly rows: Counter<'offset_key' | 'exporter'>;
  private readonly bytes: Counter<'offset_key' | 'exporter'>;
  private readonly rowsRead: Counter<'offset_key'>;
  private readonly bytesRead: Counter<'offset_key'>;
  private readonly requests: Counter<'offset_key' | 'exporter' | 'outcome'>;
  private readonly retries: Counter<'offset_key' | 'exporter'>;
  private readonly deadLetters: Counter<'offset_key' | 'exporter' | 'reason'>;
  private readonly shardSeconds: Histogram<'offset_key'>;
  private readonly offsetTs: Gauge<'offset_key'>;
  private readonly lastSuccess: Gauge<'offset_key'>;
  private readonly status: Gauge<'offset_key' | 'status'>;
  private readonly rowsPlanned: Gauge<'offset_key'>;
  private readonly rowsDone: Counter<'offset_key'>;
  private shards: Gauge<'offset_key' | 'state'> | null = null;
  private cycles: Counter<'offset_key' | 'outcome'> | null = null;
  /** The offset as Unix seconds, for the lag gauge (read at scrape time). */
  private offsetSeconds: number | null = null;
  /** The label every series carries. */
  private readonly key: { offset_key: string };

  constructor(offsetKey: string, exporterIds: string[]) {
    this.key = { offset_key: offsetKey };
    const key = this.key;
    const registers = [this.registry];
    this.rows = new Counter({ name: 'logship_rows_exported_total', help: 'Rows each exporter confirmed (delivered, not dead-lettered), counted when their shard finishes', labelNames: ['offset_key', 'exporter'], registers });
    this.bytes = new Counter({ name: 'logship_exported_bytes_total', help: 'Bytes each exporter wrote or sent, counted when their shard finishes', labelNames: ['offset_key', 'exporter'], registers });
    this.rowsRead = new Counter({ name: 'logship_rows_read_total', help: 'Rows read from the source and handed to the exporters, counted while shards run (a retried shard\'s rows count again)', labelNames: ['offset_key'], registers });
    this.bytesRead = new Counter({ name: 'logship_read_bytes_total', help: 'Bytes of the row documents read from the source (before compression), counted while shards run (a retried shard\'s bytes count again)', labelNames: ['offset_key'], registers });
    this.requests = new Counter({ name: 'logship_requests_total', help: 'Requests to document-shaped destinations, by outcome (ok, retried, dead_lettered, failed)', labelNames: ['offset_key', 'exporter', 'outcome'], registers });
    this.retries = new Counter({ name: 'logship_retries_total', help: 'Requests sent again after a retryable answer', labelNames: ['offset_key', 'exporter'], registers });
    this.deadLetters = new Counter({ name: 'logship_dead_letters_total', help: 'Events dead-lettered, by reason', labelNames: ['offset_key', 'exporter', 'reason'], registers });
    this.shardSeconds = new Histogram({ name: 'logship_shard_duration_seconds', help: 'Time to export one shard', labelNames: ['offset_key'], buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800], registers });
    this.offsetTs = new Gauge({ name: 'logship_offset_timestamp_seconds', help: 'The stored offset as a Unix time: time() - this is the export lag', labelNames: ['offset_key'], registers });
    this.lastSuccess = new Gauge({ name: 'logship_last_success_timestamp_seconds', help: 'When a run last finished successfully', labelNames: ['offset_key'], registers });
    this.status = new Gauge({ name: 'logship_run_status', help: 'The run status: 1 for the current one', labelNames: ['offset_key', 'status'], registers });
    this.rowsPlanned = new Gauge({ name: 'logship_rows_planned', help: 'Rows the run planned to export (estimated for large windows)', labelNames: ['offset_key'], registers });
    this.rowsDone = new Counter({ name: 'logship_rows_done_total', help: 'Rows of finished shards', labelNames: ['offset_key'], registers });
    // Computed when scraped, not when the offset moves: between cycles (or during an outage) the
    // lag must keep growing on the dashboard, not freeze at its last value.
    const metrics = this;
    new Gauge({
      name: 'logship_lag_seconds', help: 'Now minus the stored offset: every row older than this has been shipped (absent until an offset is known)', labelNames: ['offset_key'], registers,
      collect() {
        if (metrics.offsetSeconds === null) return;
        this.set(key, Math.max(0, Date.now() / 1000 - metrics.offsetSeconds));
      },
    });
    collectProcessMetrics(this.registry);
    // Present from the first scrape, so a dashboard sees zeros rather than gaps.
    for (const exporter of exporterIds) {
      this.rows.inc({ ...key, exporter }, 0);
      this.bytes.inc({ ...key, exporter }, 0);
    }
    this.rowsDone.inc(key, 0);
    this.rowsRead.inc(key, 0);
    this.bytesRead.inc(key, 0);
    this.setStatus('running');
  }

  setStatus(status: RunStatus): void {
    for (const s of STATUSES) this.status.set({ ...this.key, status: s }, s === status ? 1 : 0);
    if (status === 'ok') this.lastSuccess.set(this.key, Date.now() / 1000);
  }

  planned(rows: number): void {
    this.rowsPlanned.inc(this.key, rows);
  }

  shardDone(outcome: ShardOutcome, seconds: number): void {
    this.rowsDone.inc(this.key, outcome.rows);
    this.shardExported(outcome, seconds);
  }

  shardExported(outcome: ShardOutcome, seconds: number): void {
    this.shardSeconds.observe(this.key, seconds);
    for (const e of outcome.exporters) {
      this.rows.inc({ ...this.key, exporter: e.exporterId }, e.rows);
      this.bytes.inc({ ...this.key, exporter: e.exporterId }, e.bytes);
    }
  }

  /** A running shard read more rows (deltas since its attempt's previous progress message). */
  read(rows: number, bytes: number): void {
    this.rowsRead.inc(this.key, rows);
    this.bytesRead.inc(this.key, bytes);
  }

  shardRecorded(rows: number): void {
    this.rowsDone.inc(this.key, rows);
  }

  shardStates(counts: ShardCounts): void {
    // Registered on first use: only a distributed coordinator has a queue to report.
    this.shards ??= new Gauge({ name: 'logship_shards', help: 'Distributed run: its shards by state (queued, running, done, failed)', labelNames: ['offset_key', 'state'], registers: [this.registry] });
    for (const [state, n] of Object.entries(counts)) this.shards.set({ ...this.key, state }, n);
  }

  offset(bound: Bound): void {
    this.offsetSeconds = tsToMicros(bound.ts) / 1e6;
    this.offsetTs.set(this.key, this.offsetSeconds);
  }

  /** `run --follow`: a cycle ended, ok, partial (stopped) or failed (it is retried after a backoff). */
  cycleEnded(outcome: RunStatus): void {
    // Registered on first use: only --follow runs cycles.
    this.cycles ??= new Counter({ name: 'logship_cycles_total', help: 'run --follow: cycles by outcome (ok, partial, failed); failed ones are retried after a backoff', labelNames: ['offset_key', 'outcome'], registers: [this.registry] });
    this.cycles.inc({ ...this.key, outcome });
  }

  delivery(exporter: string, event: DeliveryEvent): void {
    if (event.kind === 'request') {
      this.requests.inc({ ...this.key, exporter, outcome: event.outcome });
      if (event.outcome === 'retried') this.retries.inc({ ...this.key, exporter });
    } else {
      this.requests.inc({ ...this.key, exporter, outcome: 'dead_lettered' }, event.count);
      this.deadLetters.inc({ ...this.key, exporter, reason: event.reason }, event.count);
    }
  }
}

/**
 * The process's own metrics (CPU, memory, file descriptors, event-loop lag, GC) under the
 * standard process_* and nodejs_* names every Prometheus client library uses, so stock Node.js
 * dashboards and alerts work unchanged; the job/instance labels tell logship apart. The three
 * nodejs_active_*_total gauges are dropped: a gauge must not end in _total (promtool rejects
 * it), and each only sums the nodejs_active_* gauge of the same name, which stays.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
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
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(port, err)));
    server.listen(port, resolve);
  });
  server.unref();
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Found before anything is exported, as a usage error naming the flag instead of Node's "listen EADDRINUSE". */
function listenError(port: number, err: NodeJS.ErrnoException): Error {
  if (err.code === 'EADDRINUSE') return new ConfigError('--metrics-port', `port ${port} is already in use by another process (EADDRINUSE); choose another, or 0 for any free port`);
  if (err.code === 'EACCES') return new ConfigError('--metrics-port', `port ${port} needs privileges this process does not have (EACCES); use a port above 1023`);
  return new ConfigError('--metrics-port', `cannot listen on port ${port} (${err.code ?? err.message})`);
}

/**
 * `--pushgateway URL`: the Prometheus convention for batch jobs, grouped by offset_key, and by
 * `instance` too for a distributed worker: a push replaces its whole group, so each worker
 * process needs its own or they would overwrite each other's counts.
 */
export function pushTo(url: string, metrics: RunMetrics, offsetKey: string, instance?: string): () => Promise<void> {
  const gateway = new Pushgateway(url, {}, metrics.registry);
  const groupings: Record<string, string> = instance === undefined ? { offset_key: offsetKey } : { offset_key: offsetKey, instance };
  return async () => {
    await gateway.push({ jobName: 'logship', groupings });
  };
}
