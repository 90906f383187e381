import { decideTransportError, type Decision } from '../delivery/decision.js';
import { awsErrorText, isCredentialError, type AwsError } from './client_options.js';

/** Error names every AWS service uses for "busy or broken for now": retried after a backoff. */
const RETRYABLE = new Set([
  'ThrottlingException', 'LimitExceededException', 'ProvisionedThroughputExceededException', 'KMSThrottlingException',
  'ServiceUnavailable', 'ServiceUnavailableException', 'InternalFailure', 'InternalFailureException', 'InternalServerError',
  'RequestTimeout', 'RequestTimeoutException',
]);

/** A service's own reading of an error name that means something else there (a missing stream, a KMS key). */
export type AwsSpecial = (name: string, err: unknown) => Decision | null;

/**
 * The one classifier of AWS SDK errors, for every AWS exporter's calls and pre-run checks:
 * throttling and service errors retry; credentials and other 4xx answers fail for good; errors
 * without an answer (refused, reset, DNS) retry. `label` starts each reason ("cloudwatch[a]: cannot
 * describe log group g"); `special` decides a service's own names first, after the retryable ones.
 */
export function decideAwsError(err: unknown, label: string, special?: AwsSpecial): Decision {
  const e = err as AwsError;
  const name = e?.name ?? '';
  if (RETRYABLE.has(name) || e?.$retryable?.throttling || /Throttl/.test(name)) return { kind: 'retry', reason: `${label}: ${awsErrorText(err)}` };
  const own = special?.(name, err);
  if (own) return own;
  if (isCredentialError(err)) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (check accessKeyId/secretKeyId, sessionToken or roleArn)` };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)}` };
  const d = decideTransportError(err, label);
  return d.kind === 'retry' ? { ...d, reason: `${label}: ${awsErrorText(err)}` } : d;
}
