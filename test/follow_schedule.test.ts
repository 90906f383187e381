import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KindedError } from '../src/core/errors.js';
import { FollowLoop, type FollowOptions } from '../src/run/follow.js';
import { emptyReport, type RunReport } from '../src/run/report.js';
import { StopControl } from '../src/run/stop.js';
import type { Config } from '../src/shard/config.js';
import type { Logger } from '../src/core/log.js';

const report = (): RunReport => emptyReport({ offsetKey: 'k', delete: false, deadLetter: 'dl', logExporters: [] } as unknown as Config);
const quiet = { warn: () => {}, info: () => {} } as unknown as Logger;

/**
 * A loop whose cycles are scripted: cycle n takes `durations[n]` ms of (fake) time, or throws
 * `errors[n]`; every start and end is recorded against the fake clock.
 */
function scripted(o: { durations?: number[]; errors?: (unknown | undefined)[]; intervalMs?: number; backoff?: FollowOptions['backoff'] }) {
  const events: { n: number; start: number; end?: number }[] = [];
  let running = 0;
  let maxRunning = 0;
  const stops: StopControl[] = [];
  let attempt = 0;
  const loop = new FollowLoop({
    intervalMs: o.intervalMs ?? 1000,
    backoff: o.backoff,
    log: quiet,
    newStop: () => {
      const s = new StopControl({ maxDurationMs: null, stopGraceMs: 0 });
      stops.push(s);
      return s;
    },
    cycle: async (stop) => {
      const i = attempt++;
      const e = { n: i, start: Date.now(), end: undefined as number | undefined };
      events.push(e);
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        // A cycle "runs" until its time is up or it is told to stop (as shards stop at their next batch).
        const ms = o.durations?.[i] ?? 10;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, ms);
          stop.track(() => {
            clearTimeout(t);
            resolve();
          });
        });
        const err = o.errors?.[i];
        if (err !== undefined) throw err;
        const r = report();
        if (stop.reason) r.stopped = { reason: stop.reason, shardsLeft: 1, shardsTotal: 1 };
        return r;
      } finally {
        running--;
        e.end = Date.now();
      }
    },
  });
  return { loop, events, stops, maxRunning: () => maxRunning };
}

/** Lets the loop's promise chains run at the current fake instant. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('the --follow schedule', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it('starts a cycle every interval, counted from the previous start', async () => {
    const { loop, events } = scripted({ durations: [100, 300, 50, 10], intervalMs: 1000 });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(3500);
    loop.request('SIGTERM');
    const r = await done;
    expect(events.slice(0, 4).map((e) => e.start)).toEqual([0, 1000, 2000, 3000]);
    expect(r).toEqual({ reason: 'SIGTERM', cycles: 4, failures: 0 });
  });

  it('follows a cycle longer than the interval at once, and never overlaps two', async () => {
    const { loop, events, maxRunning } = scripted({ durations: [2500, 100, 1100, 10], intervalMs: 1000 });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(6000);
    loop.request('SIGTERM');
    await done;
    // 0–2500, at once 2500–2600, one interval after 2500: 3500–4600, at once 4600–4610, then 5600
    expect(events.slice(0, 5).map((e) => [e.start, e.end])).toEqual([[0, 2500], [2500, 2600], [3500, 4600], [4600, 4610], [5600, 5610]]);
    expect(maxRunning()).toBe(1);
  });

  it('a signal between cycles ends the loop at once; no cycle starts after it', async () => {
    const { loop, events } = scripted({ durations: [10], intervalMs: 60_000 });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(100); // the first cycle is done; the loop waits out the interval
    loop.request('SIGINT');
    const r = await done;
    expect(Date.now()).toBe(100);
    expect(r.reason).toBe('SIGINT');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(events).toHaveLength(1);
  });

  it('a signal during a cycle stops that cycle (as a single run) and ends the loop after it', async () => {
    const { loop, events, stops } = scripted({ durations: [10, 50_000], intervalMs: 1000 });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(1500); // the second cycle is in flight
    expect(events).toHaveLength(2);
    expect(events[1]!.end).toBeUndefined();
    loop.request('SIGTERM');
    expect(stops[1]!.reason).toBe('SIGTERM');
    const r = await done;
    expect(r).toEqual({ reason: 'SIGTERM', cycles: 2, failures: 0 });
    expect(events[1]!.end).toBe(1500);
  });

  it('retries a failing cycle after a backoff that grows and is capped, without end, then follows on', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999); // full jitter at its top: the delays are the policy's ceiling
    const outage = new KindedError('transient', 'destination answered 503');
    const errors = [undefined, outage, outage, outage, outage, outage, outage, undefined];
    const { loop, events } = scripted({ durations: errors.map(() => 0), errors, intervalMs: 500, backoff: { firstDelayMs: 1000, maxDelayMs: 8000 } });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(60_000);
    loop.request('SIGTERM');
    const r = await done;
    const starts = events.map((e) => e.start);
    const gaps = starts.slice(2, 8).map((s, i) => s - starts[i + 1]!);
    // 1 s, 2 s, 4 s, then capped at 8 s (± the jitter's last millisecond)
    expect(gaps.map((g) => Math.round(g / 100) * 100)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(r.failures).toBe(6);
    // Back to the interval after the recovery.
    expect(starts[8]! - starts[7]!).toBe(500);
  });

  it('a signal during a backoff ends the loop at once, and the backoff\'s end starts nothing', async () => {
    const errors = [new KindedError('source-unavailable', 'connection refused'), undefined];
    const { loop, events } = scripted({ durations: [0, 0], errors, backoff: { firstDelayMs: 30_000, maxDelayMs: 30_000 } });
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(1000);
    loop.request('SIGTERM');
    expect((await done).reason).toBe('SIGTERM');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(events).toHaveLength(1);
  });

  it.each([
    ['config', 'safetyLag: bad'],
    ['permanent', 'destination answered 403'],
    ['corrupt-row', 'row 7 is not UTF-8'],
  ] as const)('ends on an error no retry can fix (%s)', async (kind, message) => {
    const { loop, events } = scripted({ errors: [undefined, new KindedError(kind, message)] });
    const done = loop.run();
    done.catch(() => {});
    await vi.advanceTimersByTimeAsync(5000);
    await expect(done).rejects.toThrow(message);
    expect(events).toHaveLength(2);
    await settle();
  });
});

describe('logship_lag_seconds', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is now minus the stored offset at each scrape, so it grows while nothing moves the offset', async () => {
    vi.useFakeTimers({ now: new Date('2026-12-07T10:00:00Z') });
    const { RunMetrics } = await import('../src/run/metrics.js');
    const m = new RunMetrics('k', ['files']);
    const lag = async () => (await m.registry.getSingleMetric('logship_lag_seconds')!.get()).values[0]?.value;
    expect(await lag()).toBeUndefined(); // no offset known yet: absent, not a made-up number
    m.offset({ ts: '2026-12-07T09:59:50.000000Z', key: null });
    expect(await lag()).toBe(10);
    vi.advanceTimersByTime(5000);
    expect(await lag()).toBe(15);
    m.offset({ ts: '2026-12-07T10:00:04.000000Z', key: null });
    expect(await lag()).toBe(1);
  });
});
