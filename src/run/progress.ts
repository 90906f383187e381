import type { Logger } from '../util/log.js';
import { formatCount } from '../util/numbers.js';

export interface ProgressOptions {
  tty: boolean;
  /** How often a structured progress line is logged when not on a TTY. */
  intervalMs: number;
  stream: NodeJS.WriteStream;
  log: Logger;
  /**
   * Test-only (LOGSHIP_TEST_PROGRESS_EVERY_BATCH=1): a line on every update and finished shard
   * instead of on a timer, so tests assert on content and order instead of counting ticks.
   */
  everyUpdate?: boolean;
}

/**
 * Progress of a run: a redrawn bar with rows/s and ETA on a terminal, periodic JSON lines
 * otherwise (CI logs, Kestra task logs, systemd).
 */
export class Progress {
  private readonly perShard = new Map<number, number>();
  private readonly finished = new Set<number>();
  private baseRows = 0;
  private expected = 0;
  private shardsDone = 0;
  private shardsTotal = 0;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private lastBarLength = 0;

  constructor(private readonly o: ProgressOptions) {}

  begin(expectedRows: number, shards: number): void {
    this.expected += expectedRows;
    this.shardsTotal += shards;
    if (!this.timer && !this.o.everyUpdate) {
      this.timer = setInterval(() => this.emit(), this.o.tty ? 200 : this.o.intervalMs);
      this.timer.unref();
    }
  }

  update(shard: number, rows: number): void {
    // A report that arrives after its shard finished must not count the shard twice.
    if (this.finished.has(shard)) return;
    this.perShard.set(shard, rows);
    if (this.o.everyUpdate) this.emit();
  }

  shardFinished(shard: number, rows: number): void {
    this.finished.add(shard);
    this.perShard.delete(shard);
    this.baseRows += rows;
    this.shardsDone++;
    if (this.o.everyUpdate) this.emit();
  }

  get rows(): number {
    let n = this.baseRows;
    for (const r of this.perShard.values()) n += r;
    return n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.o.tty && this.lastBarLength > 0) this.o.stream.write(`\r${' '.repeat(this.lastBarLength)}\r`);
  }

  private emit(): void {
    const rows = this.rows;
    const secs = (Date.now() - this.started) / 1000;
    const rate = secs > 0 ? rows / secs : 0;
    // The plan's row count is an estimate (exact for small windows, within a few percent when
    // sampled). Once the rows read pass it with shards still running, no finish time is known:
    // the total shown is then the rows so far, the percentage stays short of 100 and the ETA is
    // unknown, rather than "100% … ETA 0:00" for the rest of the run.
    const running = this.shardsDone < this.shardsTotal;
    const expected = Math.max(this.expected, rows);
    const eta = rate > 0 && rows < this.expected ? (this.expected - rows) / rate : running ? null : 0;
    if (this.o.tty) {
      const frac = expected > 0 ? Math.min(running ? 0.999 : 1, rows / expected) : 0;
      const width = 28;
      const filled = Math.round(frac * width);
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(1)}% ${formatCount(rows)}/${formatCount(expected)} rows  ${formatCount(Math.round(rate))} rows/s  shards ${this.shardsDone}/${this.shardsTotal}  ETA ${formatSeconds(eta)}`;
      this.o.stream.write(`\r${bar.padEnd(this.lastBarLength)}`);
      this.lastBarLength = bar.length;
    } else {
      this.o.log.info({ rows, expectedRows: expected, rowsPerSec: Math.round(rate), etaSeconds: eta === null ? null : Math.round(eta), shardsDone: this.shardsDone, shards: this.shardsTotal }, 'progress');
    }
  }
}

export function formatSeconds(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
