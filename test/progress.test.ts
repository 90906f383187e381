import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../src/run/progress.js';
import type { Logger } from '../src/core/log.js';

/** A terminal `columns` wide that keeps what was drawn, and a logger that keeps the progress lines. */
function progressOn(tty: boolean, columns = 120) {
  const drawn: string[] = [];
  const logged: Record<string, unknown>[] = [];
  const stream = { columns, write: (s: string) => drawn.push(s) } as unknown as NodeJS.WriteStream;
  const log = { info: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
  const progress = new Progress({ tty, intervalMs: 1000, stream, log });
  return { progress, stream, drawn, bar: () => drawn.at(-1)!.replace(/^\r/, '').trimEnd(), logged };
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

describe('the bar fits the terminal', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-07T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A run far enough along for every figure to be wide: 7-digit counts, a rate, an ETA in hours. */
  function busy(columns: number) {
    const p = progressOn(true, columns);
    p.progress.begin(20_000_000, 40);
    vi.advanceTimersByTime(100_000);
    p.progress.shardFinished(0, 1_234_567);
    vi.advanceTimersByTime(200);
    return p;
  }

  it.each([200, 80, 60, 40, 24, 12])('every line drawn (and the clearing at the end) fits %i columns without wrapping', (columns) => {
    const { progress, drawn } = busy(columns);
    progress.update(1, 10_000);
    vi.advanceTimersByTime(200);
    progress.stop();
    expect(drawn.length).toBeGreaterThan(2);
    for (const d of drawn) {
      expect(d.replace(/\r/g, '').length, JSON.stringify(d)).toBeLessThan(columns);
      expect(d).not.toContain('\n');
    }
  });

  it('narrows the bar (to 80 columns: every figure but the shard count), then drops the rate, the rows, the bar', () => {
    expect(busy(200).bar()).toBe('[##--------------------------] 6.2% 1,234,567/20,000,000 rows  12,321 rows/s  shards 1/40  ETA 25:23');
    expect(busy(80).bar()).toBe('[#-------------------] 6.2% 1,234,567/20,000,000 rows  12,321 rows/s  ETA 25:23');
    expect(busy(60).bar()).toBe('[#--------------] 6.2% 1,234,567/20,000,000 rows  ETA 25:23');
    expect(busy(50).bar()).toBe('[##--------------------------] 6.2% ETA 25:23');
    expect(busy(20).bar()).toBe('6.2% ETA 25:23');
    expect(busy(8).bar()).toBe('6.2% ET');
  });

  it('follows a resize at the next redraw, and pads over the longer line it replaces only within the new width', () => {
    const { progress, stream, drawn } = busy(120);
    const wide = drawn.at(-1)!;
    (stream as { columns: number }).columns = 50;
    vi.advanceTimersByTime(200);
    const narrow = drawn.at(-1)!;
    expect(wide.length - 1).toBeGreaterThan(49);
    expect(narrow.length - 1).toBe(49);
    progress.stop();
  });
});
