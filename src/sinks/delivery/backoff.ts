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
