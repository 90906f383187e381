import { backOff } from 'exponential-backoff';
import { kindOf } from './errors.js';

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

/**
 * Exponential backoff with full jitter (AWS's "full jitter": a uniform draw up to the capped
 * exponential), never shorter than what the server asked for with Retry-After.
 */
export interface Backoff {
  minMs: number;
  maxMs: number;
  /** Retry-After is honoured up to this long; a server asking for more is waited on this long. */
  maxRetryAfterMs?: number;
  random?: () => number;
}

export function backoffDelay(b: Backoff, attempt: number, retryAfterMs?: number): number {
  const ceiling = Math.min(b.maxMs, b.minMs * 2 ** Math.max(0, attempt - 1));
  const jittered = (b.random ?? Math.random)() * ceiling;
  const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, b.maxRetryAfterMs ?? 300_000);
  return Math.max(jittered, asked);
}

/** A sleep that an abort (the shard failing elsewhere) cuts short. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

