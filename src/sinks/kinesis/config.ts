import { ConfigError } from '../../core/errors.js';
import { describe, type OptionReader } from '../../core/options.js';
import { readAwsConnection, type AwsConnection } from '../aws/config.js';
import { readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';

export const KINESIS_TYPES = ['kinesis'];

/** PutRecords' hard limits. */
export const KINESIS_LIMITS = {
  maxRecords: 500,
  maxRequestBytes: 10 * 1024 * 1024,
  /** Data plus partition key, per record (Kinesis' default; streams can be raised to 10 MiB). */
  maxRecordBytes: 1024 * 1024,
  maxPartitionKeyChars: 256,
} as const;

const STREAM_CHARS = /^[a-zA-Z0-9_.-]+$/;
const FIELD = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `logs-{namespace}`: literal parts and document fields, rendered per record. */
export interface StreamTemplate {
  /** Literals at even positions, field names at odd ones. */
  parts: string[];
  fixed: string | undefined;
}

export function parseStreamTemplate(path: string, template: string): StreamTemplate {
  const parts = template.split(/\{([^{}]*)\}/);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i % 2 === 1 && !FIELD.test(p)) throw new ConfigError(path, `{${p}} is not a field name (use {namespace}, {flowId}, {tenantId}…)`);
    if (i % 2 === 0 && p !== '' && !STREAM_CHARS.test(p)) throw new ConfigError(path, `must be a stream name of letters, digits, _ . - with optional {field} parts (got ${JSON.stringify(template)})`);
  }
  if (parts.length === 1 && (template.length > 128 || template.length === 0)) throw new ConfigError(path, `must be 1-128 characters (got ${template.length})`);
  return { parts, fixed: parts.length === 1 ? template : undefined };
}

export function parseKinesisExporter(r: OptionReader, id: string): KinesisExporterConfig {
  const streamName = r.string('streamName');
  parseStreamTemplate(r.at('streamName'), streamName);
  const partitionKeys = readPartitionKeys(r);
  const randomPartitionKey = r.boolean('randomPartitionKey', false);
  if (randomPartitionKey && partitionKeys) throw new ConfigError(r.at('randomPartitionKey'), 'choose partitionKeys or randomPartitionKey, not both');
  const aggregation = r.boolean('aggregation', false);
  const maxRecordBytes = r.byteSize('maxRecordBytes', KINESIS_LIMITS.maxRecordBytes);
  if (maxRecordBytes < 1024 || maxRecordBytes > 10 * 1024 * 1024) throw new ConfigError(r.at('maxRecordBytes'), `must be from 1KiB to 10MiB (got ${maxRecordBytes})`);
  if (aggregation && maxRecordBytes !== KINESIS_LIMITS.maxRecordBytes) throw new ConfigError(r.at('maxRecordBytes'), 'cannot be changed with aggregation: true (aggregated records are at most 1 MiB)');
  const maxPendingRecords = r.integer('maxPendingRecords', 1000);
  // With aggregation, `chunk` counts user records: many of them pack into each Kinesis record.
  const delivery = readDeliveryOptions(r, id, aggregation ? { chunk: 5000, maxChunk: 100_000 } : { chunk: KINESIS_LIMITS.maxRecords, maxChunk: KINESIS_LIMITS.maxRecords });
  return {
    type: 'kinesis',
    ...readAwsConnection(r),
    streamName,
    partitionKeys,
    randomPartitionKey,
    aggregation,
    maxRecordBytes,
    maxPendingRecords,
    keyAttribute: r.string('keyAttribute', 'logship_key'),
    ...delivery,
    // Backpressure: no more than maxPendingRecords records in flight per worker (at least one request).
    concurrency: Math.max(1, Math.min(delivery.concurrency, Math.floor(maxPendingRecords / delivery.chunk))),
  };
}

function readPartitionKeys(r: OptionReader): string[] | undefined {
  const list = r.list('partitionKeys');
  if (list === undefined) return undefined;
  if (list.length === 0) throw new ConfigError(r.at('partitionKeys'), 'must list at least one field (or omit it: the default partition key is the row key)');
  const seen = new Set<string>();
  return list.map((f, i) => {
    if (typeof f !== 'string' || !FIELD.test(f)) throw new ConfigError(`${r.at('partitionKeys')}[${i}]`, `must be a field name such as namespace or flowId (got ${describe(f)})`);
    if (seen.has(f)) throw new ConfigError(`${r.at('partitionKeys')}[${i}]`, `duplicate field ${JSON.stringify(f)}`);
    seen.add(f);
    return f;
  });
}

export interface KinesisExporterConfig extends AwsConnection, DeliveryOptions {
  type: 'kinesis';
  /** A stream name, or a template taking fields from each record (`logs-{namespace}`). */
  streamName: string;
  /** Fields whose values, joined by `|`, make the partition key; default: the row key. */
  partitionKeys: string[] | undefined;
  randomPartitionKey: boolean;
  /** KPL aggregation (consumers must de-aggregate), per destination shard. */
  aggregation: boolean;
  /** Per record: data plus partition key. */
  maxRecordBytes: number;
  /** Records in flight per worker; caps `concurrency` at ⌊maxPendingRecords / chunk⌋ (≥ 1). */
  maxPendingRecords: number;
  keyAttribute: string;
}
