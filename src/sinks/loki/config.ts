import { ConfigError } from '../../core/errors.js';
import { describe, OptionReader } from '../../core/options.js';
import { isoDurationMillis } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, stringMap, type DeliveryOptions } from '../delivery/options.js';

export const LOKI_TYPES = ['loki', 'io.kestra.plugin.ee.loki.LogExporter'];

/** Loki's label-name rule (Prometheus'): also what structured-metadata names must be. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Fields with one value per execution, task run or row: as labels each value would be a new
 * stream (Loki's index grows with every one), so they are refused and go to structured metadata.
 */
const HIGH_CARDINALITY = new Set(['executionId', 'taskRunId', 'triggerId', 'thread', 'attemptNumber', 'timestamp', 'message', 'logship_key', 'key', 'id']);

/** Loki's defaults (limits_config): `max_label_names_per_series` and `max_label_value_length`. */
export const MAX_LABELS = 15;
export const MAX_LABEL_VALUE = 2048;

/** One label: a fixed value, or a document field (`{namespace}`). */
export interface LabelRule {
  name: string;
  literal?: string;
  field?: string;
}

export interface LokiExporterConfig extends DeliveryOptions, EventMapping {
  type: 'loki';
  /** Base URL; logship posts to `{url}/loki/api/v1/push`. */
  url: string;
  tenantId: string | undefined;
  username: string | undefined;
  password: string | undefined;
  bearerToken: string | undefined;
  headers: Record<string, string>;
  labels: LabelRule[];
  /** `json`: the line is the row's document with the row key added; `message`: the message alone. */
  lineFormat: 'json' | 'message';
  protocol: 'protobuf' | 'json';
  /** gzip for JSON bodies (protobuf bodies are always snappy, as Loki requires). */
  compression: 'gzip' | 'none';
  /** Line + structured metadata bytes per push, before compression. */
  batchBytes: number;
  /** Loki's `max_line_size`: longer lines are dead-lettered, never sent. */
  maxLineSize: number;
  /** How far behind a stream's newest entry Loki still accepts one (`max_chunk_age` / 2). */
  outOfOrderWindowMs: number;
}

const DEFAULT_LABELS = { job: 'kestra', namespace: '{namespace}', level: '{level}' };

function parseLabels(r: OptionReader): LabelRule[] {
  const raw = r.raw('labels') ?? DEFAULT_LABELS;
  const path = r.at('labels');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(path, `must be a mapping of label names to values or {field} (got ${describe(raw)})`);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) throw new ConfigError(path, 'must name at least one label (Loki refuses a stream without labels)');
  if (entries.length > MAX_LABELS) throw new ConfigError(path, `has ${entries.length} labels; Loki accepts at most ${MAX_LABELS} per stream`);
  return entries.map(([name, value]) => {
    const at = `${path}.${name}`;
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new ConfigError(at, 'is not a valid Loki label name (letters, digits and _, not starting with a digit or __)');
    if (typeof value !== 'string' || value.length === 0) throw new ConfigError(at, `must be a non-empty string: a fixed value or {field} (got ${describe(value)})`);
    const m = /^\{([^{}]+)\}$/.exec(value);
    if (!m) {
      if (/[{}]/.test(value)) throw new ConfigError(at, `must be a fixed value or exactly one {field} (got ${JSON.stringify(value)})`);
      return { name, literal: value };
    }
    const field = m[1]!;
    if (HIGH_CARDINALITY.has(field)) throw new ConfigError(at, `{${field}} has a value per execution or row: as a label it would make a stream per value; it is sent as structured metadata instead`);
    return { name, field };
  });
}

export function parseLokiExporter(r: OptionReader, id: string): LokiExporterConfig {
  const url = httpUrl(r, 'url');
  const basic = r.child('basicAuth');
  let username: string | undefined;
  let password: string | undefined;
  if (basic) {
    username = basic.string('username');
    password = basic.string('password');
    basic.done();
  }
  const bearerToken = r.optionalString('bearerToken');
  if (bearerToken && basic) throw new ConfigError(r.at('bearerToken'), 'choose basicAuth or bearerToken, not both');
  const protocol = r.choice('protocol', ['protobuf', 'json'] as const, 'protobuf');
  if (protocol === 'protobuf' && r.has('compression')) throw new ConfigError(r.at('compression'), 'applies to protocol: json only (Loki takes protobuf pushes snappy-compressed, always)');
  const compression = r.choice('compression', ['gzip', 'none'] as const, 'gzip');
  const windowMs = isoDurationMillis(r.duration('outOfOrderWindow', 'PT1H'));
  if (windowMs === undefined || windowMs <= 0) throw new ConfigError(r.at('outOfOrderWindow'), 'must be a positive duration such as PT1H');
  const config: LokiExporterConfig = {
    type: 'loki', url,
    tenantId: r.optionalString('tenantId'),
    username, password, bearerToken,
    headers: stringMap(r, 'headers'),
    labels: parseLabels(r),
    lineFormat: r.choice('lineFormat', ['json', 'message'] as const, 'json'),
    protocol, compression,
    batchBytes: r.byteSize('batchBytes', 1024 * 1024),
    maxLineSize: r.byteSize('maxLineSize', 256 * 1024),
    outOfOrderWindowMs: windowMs,
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
  };
  if (!LABEL_NAME.test(config.keyAttribute)) throw new ConfigError(r.at('keyAttribute'), 'must be a valid Loki structured-metadata name (letters, digits and _)');
  return config;
}
