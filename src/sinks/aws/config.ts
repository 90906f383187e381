import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { httpUrl } from '../delivery/options.js';

/** What every AWS exporter (CloudWatch Logs, Kinesis) reads the same way. */
export interface AwsConnection {
  region: string;
  /** Static keys (Kestra's names); without them the default credential chain applies. */
  accessKeyId: string | undefined;
  secretKeyId: string | undefined;
  sessionToken: string | undefined;
  /** STS AssumeRole on top of the static keys or the chain. */
  roleArn: string | undefined;
  /** A private or local endpoint instead of AWS's. */
  endpoint: string | undefined;
}

// Partition prefixes AWS uses today (us-east-1, us-gov-west-1, cn-north-1, eu-isoe-west-1, ap-southeast-7…).
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\-/]{1,512}$/;

export function readAwsConnection(r: OptionReader): AwsConnection {
  const region = r.string('region', process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1');
  if (!REGION.test(region)) throw new ConfigError(r.at('region'), `must be an AWS region such as us-east-1 (got ${JSON.stringify(region)})`);
  const endpointKey = r.has('endpointOverride') ? 'endpointOverride' : 'endpoint';
  if (r.has('endpointOverride') && r.has('endpoint')) throw new ConfigError(r.at('endpoint'), 'give endpoint or endpointOverride, not both');
  const endpoint = r.has(endpointKey) ? httpUrl(r, endpointKey) : undefined;
  r.ignore('endpoint', 'endpointOverride');
  const connection: AwsConnection = {
    region,
    accessKeyId: r.optionalString('accessKeyId'),
    secretKeyId: r.optionalString('secretKeyId'),
    sessionToken: r.optionalString('sessionToken'),
    roleArn: r.optionalString('roleArn'),
    endpoint,
  };
  if ((connection.accessKeyId === undefined) !== (connection.secretKeyId === undefined)) {
    throw new ConfigError(r.at(connection.accessKeyId ? 'secretKeyId' : 'accessKeyId'), 'accessKeyId and secretKeyId go together (omit both for the default AWS credential chain)');
  }
  if (connection.sessionToken !== undefined && connection.accessKeyId === undefined) throw new ConfigError(r.at('sessionToken'), 'needs accessKeyId and secretKeyId');
  if (connection.roleArn !== undefined && !ROLE_ARN.test(connection.roleArn)) {
    throw new ConfigError(r.at('roleArn'), `must be an IAM role ARN such as arn:aws:iam::123456789012:role/logship (got ${JSON.stringify(connection.roleArn)})`);
  }
  return connection;
}
