import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { isoDurationMillis } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';

export const SPLUNK_TYPES = ['splunk', 'io.kestra.plugin.ee.splunk.LogExporter'];

/** HEC's own default `max_content_length` on Splunk Cloud (and Vector's batch default): 1 MB per request. */
export const HEC_DEFAULT_MAX_BYTES = 1_000_000;

export interface SplunkExporterConfig extends DeliveryOptions, EventMapping {
  type: 'splunk';
  /** HEC base URL (`https://host:8088`); `/services/collector/event` is appended. */
  host: string;
  token: string;
  source: string;
  sourcetype: string | undefined;
  index: string | undefined;
  /** The event's `host` field; unset, Splunk records the sender. */
  eventHost: string | undefined;
  compression: 'gzip' | 'none';
  /** Uncompressed bytes per request (HEC's `max_content_length`). */
  maxBytes: number;
  /** Indexer acknowledgement: a request counts as delivered only once its ackId is acknowledged. */
  useAck: boolean;
  /** Fixed data channel (a GUID); by default each worker thread makes its own. */
  channel: string | undefined;
  ackPollIntervalMs: number;
  ackTimeoutMs: number;
  trustAllSsl: boolean;
  caCertificate: string | undefined;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function millis(r: OptionReader, key: string, fallback: string): number {
  const ms = isoDurationMillis(r.duration(key, fallback));
  if (ms === undefined || ms <= 0) throw new ConfigError(r.at(key), `must be a positive duration such as ${fallback}`);
  return ms;
}

export function parseSplunkExporter(r: OptionReader, id: string): SplunkExporterConfig {
  // Kestra's `host` is HEC's base URL; a URL that already ends in the collector path is accepted too.
  const host = httpUrl(r, 'host').replace(/\/services\/collector(\/event)?(\/1\.0)?$/, '');
  const channel = r.optionalString('channel');
  if (channel !== undefined && !GUID.test(channel)) throw new ConfigError(r.at('channel'), `must be a GUID such as 0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba (got ${JSON.stringify(channel)})`);
  const config: SplunkExporterConfig = {
    type: 'splunk',
    host,
    token: r.string('token'),
    source: r.string('source', 'kestra'),
    sourcetype: r.optionalString('sourcetype'),
    index: r.optionalString('index'),
    eventHost: r.optionalString('eventHost'),
    compression: r.choice('compression', ['gzip', 'none'] as const, 'gzip'),
    maxBytes: r.byteSize('maxBytes', HEC_DEFAULT_MAX_BYTES),
    useAck: r.boolean('useAck', false),
    channel,
    ackPollIntervalMs: millis(r, 'ackPollInterval', 'PT1S'),
    ackTimeoutMs: millis(r, 'ackTimeout', 'PT5M'),
    trustAllSsl: r.boolean('trustAllSsl', false),
    caCertificate: r.optionalString('caCertificate'),
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
  };
  if (config.maxBytes < 1024) throw new ConfigError(r.at('maxBytes'), `must be at least 1KiB (got ${config.maxBytes})`);
  if (config.ackTimeoutMs < config.ackPollIntervalMs) throw new ConfigError(r.at('ackTimeout'), 'must not be shorter than ackPollInterval');
  return config;
}
