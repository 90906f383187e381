import { awsErrorText, isCredentialError, type AwsError } from '../aws/client_options.js';
import { decideTransportError, type DeadItem, type Decision } from '../delivery/decision.js';
import type { PutRecordsOutcome } from './service.js';

const RETRY_RECORD = new Set(['ProvisionedThroughputExceededException', 'InternalFailure', 'ServiceUnavailable', 'KMSThrottlingException']);
const RETRY_CALL = new Set(['ProvisionedThroughputExceededException', 'LimitExceededException', 'ThrottlingException', 'InternalFailure', 'InternalFailureException', 'ServiceUnavailable', 'ServiceUnavailableException', 'KMSThrottlingException']);

/** A thrown PutRecords/ListShards error: fatal or retry, never dead (it is about the call, not a record). */
export function decideKinesisError(err: unknown, label: string, stream: string): Decision {
  const e = err as AwsError;
  const name = e?.name ?? '';
  if (RETRY_CALL.has(name) || e?.$retryable?.throttling) return { kind: 'retry', reason: `${label}: ${awsErrorText(err)}` };
  if (isCredentialError(err)) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (check accessKeyId/secretKeyId, sessionToken or roleArn)` };
  if (name === 'ResourceNotFoundException') return { kind: 'fatal', reason: `${label}: stream ${stream} does not exist (${awsErrorText(err)})` };
  if (name.startsWith('KMS')) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (the stream's KMS key)` };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)}` };
  const d = decideTransportError(err, label);
  return d.kind === 'retry' ? { ...d, reason: `${label}: ${awsErrorText(err)}` } : d;
}

/**
 * PutRecords answers 200 with per-record results: only the failed entries are resent
 * (throughput exceeded, internal failure); a KMS problem stops the shard; any other per-record
 * code is dead-lettered with the code and message Kinesis gave.
 */
export function decidePutRecords(outcome: PutRecordsOutcome, label: string): Decision {
  const retry: number[] = [];
  const dead: DeadItem[] = [];
  let retryReason = '';
  for (const t of outcome.thrown) {
    const d = decideKinesisError(t.error, label, t.stream);
    if (d.kind === 'fatal') return d;
    retry.push(...t.items);
    retryReason = d.kind === 'retry' ? d.reason : retryReason;
  }
  const failed = outcome.failed;
  for (let i = 0; i < failed.length; i++) {
    const f = failed[i];
    if (!f) continue;
    if (RETRY_RECORD.has(f.code)) {
      retry.push(i);
      retryReason ||= `${f.code}: ${f.message}`;
    } else if (f.code.startsWith('KMS')) return { kind: 'fatal', reason: `${label}: ${f.code}: ${f.message} (the stream's KMS key)` };
    else dead.push({ item: i, reason: `${f.code}: ${f.message}`, error: { ErrorCode: f.code, ErrorMessage: f.message } });
  }
  if (retry.length === 0 && dead.length === 0) return { kind: 'ok' };
  if (dead.length === 0 && retry.length === failed.length && outcome.thrown.length > 0) return { kind: 'retry', reason: retryReason };
  retry.sort((a, b) => a - b);
  return { kind: 'partial', retry, dead, reason: `${retry.length} records failed (${retryReason})` };
}
