import { backOff } from 'exponential-backoff';

/**
 * Whether a failed shard is worth running again. Re-running a shard is always safe (names are
 * deterministic and a rerun removes its earlier parts); it is pointless for failures that a
 * retry cannot change.
 */
export type ShardRetryDecision = 'retry' | 'dont-retry';

/** Error names that mark failures no retry fixes. */
const PERMANENT = new Set(['ConfigError', 'PermanentExportError', 'CorruptRowError']);

export function shardRetryDecision(err: unknown): ShardRetryDecision {
  const e = err as { name?: string; stack?: string };
  // Structured clone (the worker-thread boundary) resets a custom `name` to "Error", but the
  // stack it carries still starts with "PermanentExportError: …".
  const fromStack = /^(\w+):/.exec(e?.stack ?? '')?.[1];
  return (e?.name && PERMANENT.has(e.name)) || (fromStack && PERMANENT.has(fromStack)) ? 'dont-retry' : 'retry';
}

export interface BackoffPolicy {
  attempts: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

/** Exponential backoff with full jitter (the policy); `decide` is the decision, kept apart. */
export function withRetries<T>(policy: BackoffPolicy, decide: (err: unknown) => boolean, fn: () => Promise<T>, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  return backOff(fn, {
    numOfAttempts: policy.attempts,
    startingDelay: policy.firstDelayMs,
    maxDelay: policy.maxDelayMs,
    timeMultiple: 2,
    jitter: 'full',
    retry: (err, attempt) => {
      const again = decide(err);
      if (again) onRetry?.(err, attempt);
      return again;
    },
  });
}
