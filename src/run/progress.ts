import type { Logger } from '../core/log.js';
import { formatCount } from '../core/numbers.js';

export interface ProgressOptions {
  tty: boolean;
  /** How often a structured progress line is logged when not on a TTY. */
  intervalMs: number;
  stream: NodeJS.WriteStream;
  log: Logger;
  /**
   * Test-only (knobs.progressEveryBatch): a line on every update and finished shard
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
    if (this.o.tty && this.lastBarLength > 0) this.o.stream.write(`\r${' '.repeat(Math.min(this.lastBarLength, this.lineRoom()))}\r`);
  }

  /**
   * Characters a bar may take: the terminal's width (read at each redraw, so a resize applies)
   * less one, since writing the last column makes some terminals wrap. A line that wraps leaves a
   * stale copy above the bar at every redraw.
   */
  private lineRoom(): number {
    const columns = this.o.stream.columns;
    return (Number.isInteger(columns) && columns > 0 ? columns : 80) - 1;
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
      const max = this.lineRoom();
      const bar = fitBar(max, frac, {
        rows: `${formatCount(rows)}/${formatCount(expected)} rows`,
        rate: `${formatCount(Math.round(rate))} rows/s`,
        shards: `shards ${this.shardsDone}/${this.shardsTotal}`,
        eta: `ETA ${formatSeconds(eta)}`,
      });
      this.o.stream.write(`\r${bar.padEnd(Math.min(this.lastBarLength, max))}`);
      this.lastBarLength = bar.length;
    } else {
      this.o.log.info({ rows, expectedRows: expected, rowsPerSec: Math.round(rate), etaSeconds: eta === null ? null : Math.round(eta), shardsDone: this.shardsDone, shards: this.shardsTotal }, 'progress');
    }
  }
}

/** The bar's figures, in the order they are shown. */
interface BarFigures { rows: string; rate: string; shards: string; eta: string }

const BAR_MAX = 28;
const BAR_MIN = 10;
/** What goes first when the line is too long: the shard count, then the rate, then the rows. */
const DROP_ORDER: (keyof BarFigures)[][] = [[], ['shards'], ['shards', 'rate'], ['shards', 'rate', 'rows']];

/**
 * `[####------] 45.0% 1,234/5,678 rows  12,345 rows/s  shards 1/6  ETA 0:12` in at most `max`
 * characters: the bar narrows (28 down to 10 wide), then figures are left out (DROP_ORDER), then
 * the bar itself; on a terminal narrower than the percentage and ETA, the line is cut.
 */
export function fitBar(max: number, frac: number, figures: BarFigures): string {
  const pct = `${(frac * 100).toFixed(1)}%`;
  const texts = DROP_ORDER.map((drop) => [pct, ...(['rows', 'rate', 'shards', 'eta'] as const).filter((k) => !drop.includes(k)).map((k) => figures[k])]);
  // "12.0% 1/2 rows  3 rows/s…": the percentage joins the rows with one space, the rest with two.
  const join = ([first, ...rest]: string[]) => [first, rest.join('  ')].filter(Boolean).join(' ');
  for (const parts of texts) {
    const text = join(parts);
    const width = Math.min(BAR_MAX, max - text.length - 3);
    if (width >= BAR_MIN) {
      const filled = Math.round(frac * width);
      return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`;
    }
  }
  for (const parts of texts) {
    const text = join(parts);
    if (text.length <= max) return text;
  }
  return join(texts.at(-1)!).slice(0, Math.max(0, max));
}

export function formatSeconds(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
