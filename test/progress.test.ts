import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../src/run/progress.js';
import type { Logger } from '../src/util/log.js';

/** A terminal that keeps what was drawn last, and a logger that keeps the progress lines. */
function progressOn(tty: boolean) {
  const drawn: string[] = [];
  const logged: Record<string, unknown>[] = [];
  const stream = { write: (s: string) => drawn.push(s) } as unknown as NodeJS.WriteStream;
  const log = { info: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
  const progress = new Progress({ tty, intervalMs: 1000, stream, log });
  return { progress, bar: () => drawn.at(-1)!.replace(/^\r/, '').trimEnd(), logged };
}

describe('progress against the plan\'s row count', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-07T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shows the share of the planned rows and an ETA from the rate so far', () => {
    const { progress, bar } = progressOn(true);
    progress.begin(1000, 2);
    vi.advanceTimersByTime(1000);
    progress.update(0, 250);
    vi.advanceTimersByTime(200);
    expect(bar()).toMatch(/^\[#{7}-{21}\] 25\.0% 250\/1,000 rows {2}208 rows\/s {2}shards 0\/2 {2}ETA 0:04$/);
    progress.stop();
  });

  it('once the rows read pass an estimate that was low, shows no 100% and no ETA until the last shard is done', () => {
    const { progress, bar, logged } = progressOn(true);
    progress.begin(1000, 2);
    vi.advanceTimersByTime(1000);
    progress.shardFinished(0, 900);
    progress.update(1, 600);
    vi.advanceTimersByTime(200);
    expect(bar()).toContain('99.9% 1,500/1,500 rows');
    expect(bar()).toMatch(/shards 1\/2 {2}ETA --:--$/);
    progress.shardFinished(1, 700);
    vi.advanceTimersByTime(200);
    expect(bar()).toContain('100.0% 1,600/1,600 rows');
    expect(bar()).toMatch(/shards 2\/2 {2}ETA 0:00$/);
    progress.stop();
    expect(logged).toEqual([]);
  });

  it('off a terminal logs the same figures: expectedRows never below the rows read, etaSeconds null while unknown', () => {
    const { progress, logged } = progressOn(false);
    progress.begin(1000, 2);
    progress.update(0, 1200);
    vi.advanceTimersByTime(1000);
    expect(logged.at(-1)).toMatchObject({ rows: 1200, expectedRows: 1200, etaSeconds: null, shardsDone: 0, shards: 2 });
    progress.stop();
  });
});
