import { awsErrorText } from '../aws/client_options.js';
import { decideAwsError } from '../aws/classify.js';
import { type DeadItem, type Decision } from '../delivery/decision.js';
import type { PutRecordsOutcome } from './service.js';

const RETRY_RECORD = new Set(['ProvisionedThroughputExceededException', 'InternalFailure', 'ServiceUnavailable', 'KMSThrottlingException']);

/** A thrown PutRecords/ListShards error: fatal or retry, never dead (it is about the call, not a record). */
export function decideKinesisError(err: unknown, label: string, stream: string): Decision {
  return decideAwsError(err, label, (name) => {
    if (name === 'ResourceNotFoundException') return { kind: 'fatal', reason: `${label}: stream ${stream} does not exist (${awsErrorText(err)})` };
    if (name.startsWith('KMS')) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (the stream's KMS key)` };
    return null;
  });
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
