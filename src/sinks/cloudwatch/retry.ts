import { awsErrorText } from '../aws/client_options.js';
import { decideAwsError } from '../aws/classify.js';
import { type DeadItem, type Decision } from '../delivery/decision.js';

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

/** A thrown PutLogEvents error: throttling and service errors retry; credentials, missing resources and bad calls fail the shard. */
export function decideCloudWatchError(err: unknown, label: string): Decision {
  return decideAwsError(err, label, (name) => {
    // DataAlreadyAccepted: an earlier attempt's copy of this very call was stored (older APIs with sequence tokens).
    if (name === 'DataAlreadyAcceptedException') return { kind: 'ok' };
    if (name === 'ResourceNotFoundException') return { kind: 'fatal', reason: `${label}: ${awsErrorText(err)} (the log group or stream was deleted during the run)` };
    return null;
  });
}
