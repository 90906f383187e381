import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import type { CloudWatchExporterConfig } from '../src/sinks/cloudwatch/config.js';
import type { KinesisExporterConfig } from '../src/sinks/kinesis/config.js';

const noSecrets = { env: {}, secretsDir: undefined };

function load(exporter: Record<string, unknown>) {
  return loadConfigText(YAML.stringify({ logExporters: [{ id: 'a', ...exporter }] }), { secrets: noSecrets }).logExporters[0]!;
}

function errorOf(exporter: Record<string, unknown>): string {
  try {
    load(exporter);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const cw = (extra: Record<string, unknown>) => ({ type: 'cloudwatch', logGroupName: 'kestra', logStreamName: 'production', ...extra });
const kin = (extra: Record<string, unknown>) => ({ type: 'kinesis', streamName: 'logs', ...extra });

// One case per message: [what, exporter, expected message].
const cases: [string, Record<string, unknown>, string][] = [
  ['a CloudWatch exporter without logGroupName', { type: 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', logStreamName: 's' }, 'logExporters[0].logGroupName: is required'],
  ['a log group name with a forbidden character', cw({ logGroupName: 'kestra logs' }), 'logExporters[0].logGroupName: must be 1-512 characters of letters, digits and . - _ / # (got "kestra logs")'],
  ['a CloudWatch exporter without logStreamName', { type: 'cloudwatch', logGroupName: 'kestra' }, 'logExporters[0].logStreamName: is required'],
  ['a log stream name with a colon', cw({ logStreamName: 'a:b' }), 'logExporters[0].logStreamName: must be 1-512 characters without \':\' or \'*\' (got "a:b")'],
  ['a bad region', cw({ region: 'us-east' }), 'logExporters[0].region: must be an AWS region such as us-east-1 (got "us-east")'],
  ['both endpoint spellings', cw({ endpoint: 'http://a', endpointOverride: 'http://b' }), 'logExporters[0].endpoint: give endpoint or endpointOverride, not both'],
  ['an endpointOverride that is not a URL', cw({ endpointOverride: 'localhost:4566' }), 'logExporters[0].endpointOverride: must be an http:// or https:// URL (got "localhost:4566")'],
  ['an access key without its secret', cw({ accessKeyId: 'AK' }), 'logExporters[0].secretKeyId: accessKeyId and secretKeyId go together (omit both for the default AWS credential chain)'],
  ['a session token without keys', cw({ sessionToken: 'tok' }), 'logExporters[0].sessionToken: needs accessKeyId and secretKeyId'],
  ['a roleArn that is not a role ARN', kin({ roleArn: 'logship-role' }), 'logExporters[0].roleArn: must be an IAM role ARN such as arn:aws:iam::123456789012:role/logship (got "logship-role")'],
  ['a CloudWatch chunk over 10,000 events', cw({ chunk: 20000 }), 'logExporters[0].chunk: must be an integer from 1 to 10000 (got 20000)'],
  ['a Kinesis exporter without streamName', { type: 'kinesis' }, 'logExporters[0].streamName: is required'],
  ['a streamName template with a bad field', kin({ streamName: 'logs-{name space}' }), 'logExporters[0].streamName: {name space} is not a field name (use {namespace}, {flowId}, {tenantId}…)'],
  ['a streamName with a forbidden character', kin({ streamName: 'logs/{namespace}' }), 'logExporters[0].streamName: must be a stream name of letters, digits, _ . - with optional {field} parts (got "logs/{namespace}")'],
  ['a streamName over 128 characters', kin({ streamName: 's'.repeat(129) }), 'logExporters[0].streamName: must be 1-128 characters (got 129)'],
  ['an empty partitionKeys list', kin({ partitionKeys: [] }), 'logExporters[0].partitionKeys: must list at least one field (or omit it: the default partition key is the row key)'],
  ['an invalid partitionKeys field', kin({ partitionKeys: ['namespace', 'flow id'] }), 'logExporters[0].partitionKeys[1]: must be a field name such as namespace or flowId (got "flow id")'],
  ['a duplicate partitionKeys field', kin({ partitionKeys: ['namespace', 'namespace'] }), 'logExporters[0].partitionKeys[1]: duplicate field "namespace"'],
  ['partitionKeys and randomPartitionKey together', kin({ partitionKeys: ['namespace'], randomPartitionKey: true }), 'logExporters[0].randomPartitionKey: choose partitionKeys or randomPartitionKey, not both'],
  ['a maxRecordBytes out of range', kin({ maxRecordBytes: '20MiB' }), 'logExporters[0].maxRecordBytes: must be from 1KiB to 10MiB (got 20971520)'],
  ['a maxRecordBytes with aggregation', kin({ aggregation: true, maxRecordBytes: '512KiB' }), 'logExporters[0].maxRecordBytes: cannot be changed with aggregation: true (aggregated records are at most 1 MiB)'],
  ['a Kinesis chunk over 500 records', kin({ chunk: 501 }), 'logExporters[0].chunk: must be an integer from 1 to 500 (got 501)'],
];

describe('AWS exporter configuration errors', () => {
  it.each(cases)('%s', (_what, exporter, expected) => {
    expect(errorOf(exporter)).toBe(expected);
  });
});

describe('AWS exporter configuration', () => {
  it('accepts the Kestra class names and fills the defaults', () => {
    for (const type of ['io.kestra.plugin.ee.aws.cloudwatch.LogExporter', 'io.kestra.plugin.ee.aws.LogExporter', 'CloudWatch']) {
      const c = load(cw({ type, region: 'eu-west-3' })) as unknown as CloudWatchExporterConfig;
      expect(c).toMatchObject({ type: 'cloudwatch', region: 'eu-west-3', createLogGroup: true, chunk: 1000, concurrency: 4, maxAttempts: 8, keyAttribute: 'logship_key', endpoint: undefined, roleArn: undefined });
    }
  });

  it('caps Kinesis requests in flight by maxPendingRecords', () => {
    expect(load(kin({})) as unknown as KinesisExporterConfig).toMatchObject({ chunk: 500, concurrency: 2, maxPendingRecords: 1000, aggregation: false, maxRecordBytes: 1048576, randomPartitionKey: false, partitionKeys: undefined });
    expect((load(kin({ chunk: 100, concurrency: 8, maxPendingRecords: 200 })) as unknown as KinesisExporterConfig).concurrency).toBe(2);
    expect((load(kin({ chunk: 500, maxPendingRecords: 10 })) as unknown as KinesisExporterConfig).concurrency).toBe(1);
    expect(load(kin({ aggregation: true })) as unknown as KinesisExporterConfig).toMatchObject({ chunk: 5000, concurrency: 1 });
  });
});

describe('shard retry decision', () => {
  it('a permanent error thrown in a worker thread is not retried once it crossed the thread boundary', async () => {
    const { shardRetryDecision } = await import('../src/core/retry.js');
    const { fromWire, toWire } = await import('../src/core/errors.js');
    const { PermanentExportError } = await import('../src/core/errors.js');
    const denied = new PermanentExportError('cloudwatch exporter: AccessDeniedException');
    expect(structuredClone(denied).name).toBe('Error'); // a custom class does not survive the clone
    const crossed = fromWire(structuredClone(toWire(denied, `shard 3 (abc): ${denied.message}`)));
    expect(shardRetryDecision(crossed)).toBe('dont-retry');
    expect(shardRetryDecision(fromWire(structuredClone(toWire(new Error('ECONNRESET'), 'ECONNRESET'))))).toBe('retry');
  });
});
