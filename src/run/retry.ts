import { backOff } from 'exponential-backoff';
import { kindOf } from './error_kind.js';

/**
 * Whether a failed shard is worth running again. Re-running a shard is always safe (names are
 * deterministic and a rerun removes its earlier parts); it is pointless for failures that a
 * retry cannot change.
 */
export type ShardRetryDecision = 'retry' | 'dont-retry';

/** Decided on the error's explicit kind (error_kind.ts), which survives the worker-thread boundary. */
export function shardRetryDecision(err: unknown): ShardRetryDecision {
  const kind = kindOf(err);
  // A source that went away may come back; a config, a refusal or a bad row will not change.
  return kind === 'transient' || kind === 'source-unavailable' ? 'retry' : 'dont-retry';
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
      // The library asks even after the last attempt; saying "retrying" then would be false.
      if (again && attempt < policy.attempts) onRetry?.(err, attempt);
      return again;
    },
  });
}
