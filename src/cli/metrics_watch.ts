import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';
import type { Config } from '../shard/config.js';
import type { RunMetrics, RunStatus } from '../run/metrics.js';
import { log } from '../core/log.js';

export interface MetricsWatchOptions {
  /** Serve Prometheus /metrics on this port while the process lives (0 = any free port). */
  metricsPort?: number;
  /** Push the metrics to this Prometheus Pushgateway every `pushIntervalMs` and at the end. */
  pushgateway?: string;
  pushIntervalMs: number;
  /** Pushgateway grouping key `instance` (a distributed worker's id); none for a run. */
  instance?: string;
}

export interface MetricsWatch {
  metrics: RunMetrics;
  end(status: RunStatus): Promise<void>;
}

/** `--metrics-port` / `--pushgateway` of `run` and `worker`: one process's metrics, served and pushed. */
export async function startMetrics(config: Config, o: MetricsWatchOptions): Promise<MetricsWatch | null> {
  if (o.metricsPort === undefined && !o.pushgateway) return null;
  const { RunMetrics, serveMetrics, pushTo } = await import('../run/metrics.js');
  const metrics = new RunMetrics(config.offsetKey, config.logExporters.map((e) => e.id));
  const server = o.metricsPort !== undefined ? await serveMetrics(metrics, o.metricsPort) : null;
  if (server) log.info({ port: server.port }, `serving Prometheus metrics on :${server.port}/metrics`);
  const push = o.pushgateway ? pushTo(o.pushgateway, metrics, config.offsetKey, o.instance) : null;
  // A failed push must not fail the export: it is logged, and the next one tries again.
  const pushQuietly = async () => push?.().catch((err: unknown) => log.warn({ error: redact(errorMessage(err)) }, 'pushing metrics failed'));
  const timer = push ? setInterval(() => void pushQuietly(), o.pushIntervalMs) : null;
  timer?.unref();
  await pushQuietly();
  return {
    metrics,
    async end(status) {
      if (timer) clearInterval(timer);
      metrics.setStatus(status);
      await pushQuietly();
      await server?.close();
    },
  };
}
