import { ConfigError } from '../../core/errors.js';
import { describe, type OptionReader } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';

export const DATADOG_TYPES = ['datadog', 'io.kestra.plugin.ee.datadog.LogExporter'];

/** Datadog's logs intake limits (HTTP API v2 `/api/v2/logs`). */
export const DATADOG_LIMITS = {
  maxEvents: 1000,
  /** Uncompressed bytes per request. */
  maxBytes: 5_000_000,
  /** Bytes per log; Datadog truncates longer logs, and logship truncates their message the same way before sending. */
  maxEventBytes: 1_000_000,
};

export interface DatadogExporterConfig extends DeliveryOptions, EventMapping {
  type: 'datadog';
  /** Intake base URL; `/api/v2/logs` is appended. */
  basePath: string;
  apiKey: string;
  ddsource: string;
  /** Fixed service name; by default each event's namespace. */
  service: string | undefined;
  /** `key:value,key:value`, added to every log. */
  ddtags: string | undefined;
  hostname: string | undefined;
  compression: 'gzip' | 'none';
}

export function parseDatadogExporter(r: OptionReader, id: string): DatadogExporterConfig {
  return {
    type: 'datadog',
    basePath: httpUrl(r, 'basePath', 'https://http-intake.logs.datadoghq.com').replace(/\/api\/v2\/logs$/, ''),
    apiKey: r.string('apiKey'),
    ddsource: r.string('ddsource', 'kestra'),
    service: r.optionalString('service'),
    ddtags: readTags(r),
    hostname: r.optionalString('hostname'),
    compression: r.choice('compression', ['gzip', 'none'] as const, 'gzip'),
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: DATADOG_LIMITS.maxEvents }),
  };
}

/** `ddtags` as Datadog writes it (`env:prod,team:data`) or as a list of `key:value` tags. */
function readTags(r: OptionReader): string | undefined {
  const raw = r.raw('ddtags');
  if (raw === undefined || raw === null) return undefined;
  const tags = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : null;
  if (!tags || tags.length === 0) throw new ConfigError(r.at('ddtags'), `must be a string of comma-separated tags (env:prod,team:data) or a list of tags (got ${describe(raw)})`);
  for (const t of tags) {
    if (typeof t !== 'string' || t.trim().length === 0 || /[\s,]/.test(t.trim())) {
      throw new ConfigError(r.at('ddtags'), `each tag must be a non-empty key:value without spaces or commas (got ${describe(t)})`);
    }
  }
  return (tags as string[]).map((t) => t.trim()).join(',');
}
