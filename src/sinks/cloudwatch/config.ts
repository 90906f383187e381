import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { readAwsConnection, type AwsConnection } from '../aws/config.js';
import { readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';

export const CLOUDWATCH_TYPES = ['cloudwatch', 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', 'io.kestra.plugin.ee.aws.LogExporter'];

/** PutLogEvents' hard limits (CloudWatch Logs quotas). */
export const CLOUDWATCH_LIMITS = {
  maxEvents: 10_000,
  /** Bytes per call, counted as the UTF-8 message bytes plus 26 per event. */
  maxBatchBytes: 1_048_576,
  overheadPerEvent: 26,
  /** A call's events must span less than 24 hours. */
  maxSpanMs: 24 * 3600 * 1000,
  /** Events older than this (or than the group's retention) are rejected. */
  maxAgeMs: 14 * 24 * 3600 * 1000,
  /** Events further ahead than this are rejected. */
  maxAheadMs: 2 * 3600 * 1000,
} as const;

// Log group: 1-512 of [.-_/#A-Za-z0-9]; log stream: 1-512, no ':' or '*'.
const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const STREAM_NAME = /^[^:*]{1,512}$/;

export function parseCloudWatchExporter(r: OptionReader, id: string): CloudWatchExporterConfig {
  const logGroupName = r.string('logGroupName');
  if (!GROUP_NAME.test(logGroupName)) throw new ConfigError(r.at('logGroupName'), `must be 1-512 characters of letters, digits and . - _ / # (got ${JSON.stringify(logGroupName)})`);
  const logStreamName = r.string('logStreamName');
  if (!STREAM_NAME.test(logStreamName)) throw new ConfigError(r.at('logStreamName'), `must be 1-512 characters without ':' or '*' (got ${JSON.stringify(logStreamName)})`);
  return {
    type: 'cloudwatch',
    ...readAwsConnection(r),
    logGroupName,
    logStreamName,
    createLogGroup: r.boolean('createLogGroup', true),
    keyAttribute: r.string('keyAttribute', 'logship_key'),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: CLOUDWATCH_LIMITS.maxEvents }),
  };
}

export interface CloudWatchExporterConfig extends AwsConnection, DeliveryOptions {
  type: 'cloudwatch';
  logGroupName: string;
  logStreamName: string;
  /** Create the log group and stream when they are missing. */
  createLogGroup: boolean;
  /** Member added to each JSON message carrying the row key. */
  keyAttribute: string;
}
