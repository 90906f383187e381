import { backOff } from 'exponential-backoff';

/**
 * Whether a failed shard is worth running again. Re-running a shard is always safe (names are
 * deterministic and a rerun removes its earlier parts); it is pointless for failures that a
 * retry cannot change.
 */
export type ShardRetryDecision = 'retry' | 'dont-retry';

/** Error names that mark failures no retry fixes; names survive the worker-thread boundary. */
const PERMANENT = new Set(['ConfigError', 'PermanentExportError', 'CorruptRowError']);

/** A source lost or refused after startup (restart, failover): a new connection may well work. */
const TRANSIENT = new Set(['SourceUnavailableError']);

export function shardRetryDecision(err: unknown): ShardRetryDecision {
  const name = (err as { name?: string })?.name;
  if (name && TRANSIENT.has(name)) return 'retry';
  return name && PERMANENT.has(name) ? 'dont-retry' : 'retry';
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
