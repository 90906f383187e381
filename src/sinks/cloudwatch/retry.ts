import { awsErrorText, isCredentialError, type AwsError } from '../aws/client_options.js';
import { decideTransportError, type DeadItem, type Decision } from '../delivery/decision.js';

export interface RejectedLogEventsInfo {
  tooNewLogEventStartIndex?: number;
  tooOldLogEventEndIndex?: number;
  expiredLogEventEndIndex?: number;
}

/**
 * PutLogEvents accepts a call whole or rejects it whole, except for events outside the time
 * window, which it drops one by one and reports by index ranges of the (sorted) call:
 * `[0, tooOldLogEventEndIndex)` more than 14 days old, `[0, expiredLogEventEndIndex)` older
 * than the group's retention, `[tooNewLogEventStartIndex, n)` more than 2 hours ahead.
 * Those are dead-lettered with that reason; a retry could never land them.
 */
export function decidePutLogEvents(count: number, rejected: RejectedLogEventsInfo | undefined): Decision {
  if (!rejected) return { kind: 'ok' };
  const reasons = new Map<number, string>();
  const mark = (from: number, to: number, reason: string) => {
    for (let i = Math.max(0, from); i < Math.min(count, to); i++) if (!reasons.has(i)) reasons.set(i, reason);
  };
  if (rejected.tooOldLogEventEndIndex !== undefined) mark(0, rejected.tooOldLogEventEndIndex, 'rejected by CloudWatch Logs: too old (more than 14 days before the time of the call)');
  if (rejected.expiredLogEventEndIndex !== undefined) mark(0, rejected.expiredLogEventEndIndex, "rejected by CloudWatch Logs: older than the log group's retention period");
  if (rejected.tooNewLogEventStartIndex !== undefined) mark(rejected.tooNewLogEventStartIndex, count, 'rejected by CloudWatch Logs: too new (more than 2 hours after the time of the call)');
  if (reasons.size === 0) return { kind: 'ok' };
  const dead: DeadItem[] = [...reasons].sort((a, b) => a[0] - b[0]).map(([item, reason]) => ({ item, reason, error: rejected }));
  return { kind: 'partial', retry: [], dead, reason: `${dead.length} events outside CloudWatch's time window` };
}

const RETRYABLE = new Set(['ThrottlingException', 'ServiceUnavailableException', 'ServiceUnavailable', 'InternalFailure', 'InternalServerError', 'RequestTimeout', 'RequestTimeoutException', 'LimitExceededException']);

/** A thrown PutLogEvents error: throttling and service errors retry; credentials, missing resources and bad calls fail the shard. */
export function decideCloudWatchError(err: unknown, label: string): Decision {
  const e = err as AwsError;
  const name = e?.name ?? '';
  // DataAlreadyAccepted: an earlier attempt's copy of this very call was stored (older APIs with sequence tokens).
  if (name === 'DataAlreadyAcceptedException') return { kind: 'ok' };
  if (RETRYABLE.has(name) || e?.$retryable?.throttling) return { kind: 'retry', reason: `${label}: ${awsErrorText(err)}` };
  if (isCredentialError(err)) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (check accessKeyId/secretKeyId, sessionToken or roleArn)` };
  if (name === 'ResourceNotFoundException') return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (the log group or stream was deleted during the run)` };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)}` };
  const d = decideTransportError(err, label);
  return d.kind === 'retry' ? { ...d, reason: `${label}: ${awsErrorText(err)}` } : d;
}
