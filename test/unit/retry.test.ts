import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, retrying, sleep, withRetries } from '../../src/core/retry.js';

/** A seeded stream of draws in [0, 1): the jitter is reproducible. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('backoffDelay', () => {
  it('draws up to a ceiling that doubles per attempt and stops at maxMs', () => {
    const max = { minMs: 100, maxMs: 1000, random: () => 0.999999 };
    expect([1, 2, 3, 4, 5, 6].map((a) => Math.round(backoffDelay(max, a)))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ minMs: 100, maxMs: 1000, random: () => 0 }, 3)).toBe(0);
  });

  it('waits at least what Retry-After asked, up to maxRetryAfterMs', () => {
    const b = { minMs: 100, maxMs: 1000, random: () => 0.5, maxRetryAfterMs: 5000 };
    expect(backoffDelay(b, 1, 3000)).toBe(3000);
    expect(backoffDelay(b, 1, 60_000)).toBe(5000);
    expect(backoffDelay(b, 1, 10)).toBe(50);
  });
});

describe('retrying', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('retries a transient failure after the backoff, then returns the result', async () => {
    const random = seeded(7);
    const expected = [backoffDelay({ minMs: 100, maxMs: 1000, random: seeded(7) }, 1)];
    let calls = 0;
    const waits: number[] = [];
    const done = retrying(
      { attempts: 3, backoff: { minMs: 100, maxMs: 1000, random }, onRetry: (_e, _a, ms) => waits.push(ms) },
      () => ({ retry: true }),
      async () => {
        calls++;
        if (calls === 1) throw new Error('reset');
        return 'ok';
      },
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(expected[0]!);
    await expect(done).resolves.toBe('ok');
    expect(calls).toBe(2);
    expect(waits).toEqual(expected);
  });

  it('does not retry before Retry-After has passed', async () => {
    let calls = 0;
    const done = retrying({ attempts: 2, backoff: { minMs: 1, maxMs: 1, random: () => 0 } }, () => ({ retry: true, retryAfterMs: 2000 }), async () => {
      if (++calls === 1) throw new Error('429');
      return calls;
    });
    await vi.advanceTimersByTimeAsync(1999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toBe(2);
  });

  it('throws at once what the classifier refuses, and the last error when attempts run out', async () => {
    let calls = 0;
    await expect(retrying({ attempts: 5, backoff: { minMs: 1, maxMs: 1 } }, () => ({ retry: false }), async () => {
      calls++;
      throw new Error('403');
    })).rejects.toThrow('403');
    expect(calls).toBe(1);

    calls = 0;
    const exhausted = retrying({ attempts: 3, backoff: { minMs: 10, maxMs: 10, random: () => 0.5 } }, () => ({ retry: true }), async () => {
      throw new Error(`fail ${++calls}`);
    });
    const caught = exhausted.catch((e: Error) => e);
    await vi.advanceTimersByTimeAsync(100);
    expect(((await caught) as Error).message).toBe('fail 3');
  });

  it('an abort cuts a wait short', async () => {
    const abort = new AbortController();
    let resolved = false;
    void sleep(60_000, abort.signal).then(() => (resolved = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(resolved).toBe(false);
    abort.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(resolved).toBe(true);
  });

  it('withRetries tells of each retry but not after the last attempt', async () => {
    const told: number[] = [];
    const p = withRetries({ attempts: 3, firstDelayMs: 5, maxDelayMs: 5 }, () => true, async () => {
      throw new Error('down');
    }, (_e, attempt) => told.push(attempt)).catch((e: Error) => e.message);
    await vi.advanceTimersByTimeAsync(50);
    expect(await p).toBe('down');
    expect(told).toEqual([1, 2]);
  });
});
