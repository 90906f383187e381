import { kindOf } from './errors.js';

/**
 * The one retry policy of logship: exponential backoff with full jitter (AWS's "full jitter": a
 * uniform draw up to the capped exponential), never shorter than what a server asked for with
 * Retry-After. Shard retries, source reconnects, `--follow` cycles, deliveries and pre-run checks
 * all wait through `backoffDelay`; `retrying` is the loop around it. The decision whether an error
 * is worth another attempt is each caller's (a classifier), kept apart from the policy.
 */
export interface Backoff {
  minMs: number;
  maxMs: number;
  /** Retry-After is honoured up to this long; a server asking for more is waited on this long. */
  maxRetryAfterMs?: number;
  /** Seeded in tests; Math.random otherwise. */
  random?: () => number;
}

export function backoffDelay(b: Backoff, attempt: number, retryAfterMs?: number): number {
  const ceiling = Math.min(b.maxMs, b.minMs * 2 ** Math.max(0, attempt - 1));
  const jittered = (b.random ?? Math.random)() * ceiling;
  const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, b.maxRetryAfterMs ?? 300_000);
  return Math.max(jittered, asked);
}

/** A sleep that an abort (the shard failing elsewhere, a signal) cuts short. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** What a classifier says of a failed attempt. */
export type RetryVerdict = { retry: false } | { retry: true; retryAfterMs?: number };

export interface RetryLoop {
  /** Attempts in all, the first included (Infinity: until the classifier says stop). */
  attempts: number;
  backoff: Backoff;
  /** Told before each wait: the error and the attempt that failed. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn` until it succeeds, the classifier refuses a retry, or the attempts run out; then
 * throws the last error.
 */
export async function retrying<T>(loop: RetryLoop, classify: (err: unknown) => RetryVerdict, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const verdict = classify(err);
      if (!verdict.retry) throw err;
      if (attempt >= loop.attempts) throw err;
      const delayMs = backoffDelay(loop.backoff, attempt, verdict.retryAfterMs);
      loop.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}

/**
 * Whether a failed shard is worth running again. Re-running a shard is always safe (names are
 * deterministic and a rerun removes its earlier parts); it is pointless for failures that a
 * retry cannot change.
 */
export type ShardRetryDecision = 'retry' | 'dont-retry';

/** Decided on the error's explicit kind (errors.ts), which survives the worker-thread boundary. */
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

/** `retrying` with a yes/no decision and no Retry-After: shard retries, reconnects, follow cycles. */
export function withRetries<T>(policy: BackoffPolicy, decide: (err: unknown) => boolean, fn: () => Promise<T>, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  return retrying(
    { attempts: policy.attempts, backoff: { minMs: policy.firstDelayMs, maxMs: policy.maxDelayMs }, onRetry },
    (err) => (decide(err) ? { retry: true } : { retry: false }),
    () => fn(),
  );
}
