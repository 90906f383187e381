import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, stringMap, type DeliveryOptions } from '../delivery/options.js';

export const OTLP_TYPES = ['otlp', 'io.kestra.plugin.ee.opentelemetry.LogExporter', 'opentelemetry'];

/** Bytes of encoded records per request: the 4 MiB most OTLP receivers take by default (gRPC's limit). */
export const OTLP_DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

export interface OtlpExporterConfig extends DeliveryOptions, EventMapping {
  type: 'otlp';
  /** Full URL of the logs endpoint, such as `http://otel-collector:4318/v1/logs`. */
  otlpEndpoint: string;
  /** Request headers, including the authorization header when one is configured. */
  headers: Record<string, string>;
  protocol: 'http/protobuf' | 'http/json';
  compression: 'gzip' | 'none';
  /** Resource attribute `service.name`. */
  serviceName: string;
  resourceAttributes: Record<string, string>;
  maxBytes: number;
  trustAllSsl: boolean;
  caCertificate: string | undefined;
}

export function parseOtlpExporter(r: OptionReader, id: string): OtlpExporterConfig {
  const otlpEndpoint = httpUrl(r, 'otlpEndpoint');
  const headers = stringMap(r, 'headers');
  const authName = r.optionalString('authorizationHeaderName');
  const authValue = r.optionalString('authorizationHeaderValue');
  if (authName !== undefined && authValue === undefined) throw new ConfigError(r.at('authorizationHeaderValue'), 'is required with authorizationHeaderName');
  if (authValue !== undefined) headers[authName ?? 'Authorization'] = authValue;
  const config: OtlpExporterConfig = {
    type: 'otlp',
    otlpEndpoint,
    headers,
    protocol: r.choice('protocol', ['http/protobuf', 'http/json'] as const, 'http/protobuf'),
    compression: r.choice('compression', ['gzip', 'none'] as const, 'gzip'),
    serviceName: r.string('serviceName', 'kestra'),
    resourceAttributes: stringMap(r, 'resourceAttributes'),
    maxBytes: r.byteSize('maxBytes', OTLP_DEFAULT_MAX_BYTES),
    trustAllSsl: r.boolean('trustAllSsl', false),
    caCertificate: r.optionalString('caCertificate'),
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
  };
  if (config.maxBytes < 1024) throw new ConfigError(r.at('maxBytes'), `must be at least 1KiB (got ${config.maxBytes})`);
  return config;
}
