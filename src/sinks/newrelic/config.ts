import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, stringMap, type DeliveryOptions } from '../delivery/options.js';

export const NEWRELIC_TYPES = ['newrelic', 'io.kestra.plugin.ee.newrelic.LogExporter'];

/** New Relic Log API limits (`/log/v1`). */
export const NEWRELIC_LIMITS = {
  /** Bytes per POST as sent (compressed when gzip is on). */
  maxPayloadBytes: 1_000_000,
  /** Uncompressed JSON per request while building with gzip on; a body still over 1 MB compressed is halved before sending. */
  maxGzipSourceBytes: 5_000_000,
  maxAttributes: 255,
  /** New Relic keeps the first 4,094 characters of a string and the next 128,000 UTF-8 bytes as a blob, and drops the rest. */
  storedChars: 4094,
  blobBytes: 128_000,
};

export interface NewRelicExporterConfig extends DeliveryOptions, EventMapping {
  type: 'newrelic';
  /** Log API base URL; `/log/v1` is appended. */
  basePath: string;
  apiKey: string;
  /** `logtype` common attribute (New Relic matches parsing rules on it). */
  logtype: string;
  commonAttributes: Record<string, string>;
  compression: 'gzip' | 'none';
}

export function parseNewRelicExporter(r: OptionReader, id: string): NewRelicExporterConfig {
  const commonAttributes = stringMap(r, 'commonAttributes');
  const config: NewRelicExporterConfig = {
    type: 'newrelic',
    basePath: httpUrl(r, 'basePath', 'https://log-api.newrelic.com').replace(/\/log\/v1$/, ''),
    apiKey: r.string('apiKey'),
    logtype: r.string('logtype', 'kestra'),
    commonAttributes,
    compression: r.choice('compression', ['gzip', 'none'] as const, 'gzip'),
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 10_000 }),
  };
  if (Object.keys(commonAttributes).length >= NEWRELIC_LIMITS.maxAttributes) {
    throw new ConfigError(r.at('commonAttributes'), `at most ${NEWRELIC_LIMITS.maxAttributes - 1} attributes (New Relic allows ${NEWRELIC_LIMITS.maxAttributes} per log, logtype included; got ${Object.keys(commonAttributes).length})`);
  }
  return config;
}
