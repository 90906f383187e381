/**
 * `run --follow`: a cycle every interval on one opened Runner. The schedule only: what a cycle
 * does is the caller's (Runner.cycle), so the timing is unit-tested with fake timers.
 *
 * - A cycle starts `intervalMs` after the previous one started; one that took longer is followed
 *   at once, never overlapped (cycles run one after another on this one loop).
 * - A cycle that fails with an error a retry may fix (kind transient or source-unavailable: a
 *   destination outage, a source restart) is run again after an exponential backoff with full
 *   jitter (withRetries, the shards' own policy), without end: the process keeps following. Any
 *   other error (config, permanent, corrupt-row) ends the loop: the caller exits 2 or 1.
 * - A signal during a cycle stops it as it stops a single run (running shards stop at their next
 *   batch, the checkpoint is saved); between cycles, in the interval or a backoff, the loop ends
 *   at once.
 */
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';
import type { Logger } from '../core/log.js';
import { withRetries, shardRetryDecision, type BackoffPolicy } from '../core/retry.js';
import type { RunReport } from './report.js';
import type { StopControl, StopReason } from './stop.js';

export type SignalReason = Exclude<StopReason, 'deadline'>;

/** Backoff between failed cycles: from 1 s, doubling, at most a minute apart; attempts without end. */
export const CYCLE_BACKOFF: Omit<BackoffPolicy, 'attempts'> = { firstDelayMs: 1000, maxDelayMs: 60_000 };

export interface FollowOptions {
  intervalMs: number;
  backoff?: Omit<BackoffPolicy, 'attempts'>;
  /** A fresh StopControl for each cycle (its deadline, maxDuration, bounds that cycle). */
  newStop(): StopControl;
  /** Runs one cycle; its report tells whether it stopped early. */
  cycle(stop: StopControl, n: number): Promise<RunReport>;
  log: Logger;
  /** A cycle failed and will be retried after a backoff (metrics count it). */
  onCycleFailed?(err: unknown, failuresInARow: number): void;
}

export interface FollowResult {
  /** The signal that ended the loop. */
  reason: SignalReason;
  /** Cycles that ran to an end (stopped ones included). */
  cycles: number;
  /** Failed attempts, all retried. */
  failures: number;
}

export class FollowLoop {
  reason: SignalReason | null = null;
  private current: StopControl | null = null;
  /** Waits between cycles (the interval, a backoff), each ended at once by a signal. */
  private readonly waiters = new Set<() => void>();
  private cycles = 0;
  private failures = 0;
  private lastStart = 0;

  constructor(private readonly o: FollowOptions) {}

  /** Whether a signal has been received (onStopSignals: a second one then exits at once). */
  get stopping(): boolean {
    return this.reason !== null;
  }

  /** A signal: the cycle in flight stops as a single run would; between cycles the loop ends now. */
  request(reason: StopReason): void {
    if (reason === 'deadline') return;
    this.reason ??= reason;
    if (this.current) this.current.request(reason);
    else for (const wake of [...this.waiters]) wake();
  }

  /** Cycles until a signal; rejects with the first error no retry can fix. */
  async run(): Promise<FollowResult> {
    while (this.reason === null) {
      const report = await this.cycleWithBackoff();
      if (report === null || this.reason !== null) break;
      // From the start of the attempt that succeeded: after a backoff, a full interval follows.
      await this.sleep(this.lastStart + this.o.intervalMs - Date.now());
    }
    return { reason: this.reason!, cycles: this.cycles, failures: this.failures };
  }

  /** One cycle, retried after failures; null when a signal came between attempts. */
  private cycleWithBackoff(): Promise<RunReport | null> {
    const backoff = this.o.backoff ?? CYCLE_BACKOFF;
    let inARow = 0;
    const attempt = async (): Promise<RunReport | null> => {
      // A backoff's timer fires after a signal ended the loop: start nothing.
      if (this.reason !== null) return null;
      const stop = this.o.newStop();
      this.current = stop;
      this.lastStart = Date.now();
      try {
        const report = await this.o.cycle(stop, this.cycles + 1);
        this.cycles++;
        return report;
      } finally {
        this.current = null;
      }
    };
    const retried = withRetries(
      { ...backoff, attempts: Infinity },
      (err) => this.reason === null && shardRetryDecision(err) === 'retry',
      attempt,
      (err) => {
        this.failures++;
        inARow++;
        this.o.log.warn({ error: redact(errorMessage(err)), failuresInARow: inARow }, 'cycle failed; following again after a backoff (the offset stays at the last checkpoint)');
        this.o.onCycleFailed?.(err, inARow);
      },
    );
    // The backoff's sleep cannot be cut short: a signal in it ends the wait here instead (and
    // `attempt` starts nothing when the sleep ends).
    return this.orSignal(retried);
  }

  /** Waits `ms` (nothing when ≤ 0), or less if a signal comes. */
  private async sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.reason !== null) return;
    let timer: NodeJS.Timeout | undefined;
    await this.orSignal(new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))));
    clearTimeout(timer);
  }

  /**
   * `p`, or null as soon as a signal comes between cycles. Each wait registers and removes its own
   * waker: a race against one long-lived promise would keep a reaction per cycle for ever.
   */
  private orSignal<T>(p: Promise<T>): Promise<T | null> {
    if (this.reason !== null && this.current === null) return Promise.resolve(null);
    return new Promise<T | null>((resolve, reject) => {
      const wake = () => {
        this.waiters.delete(wake);
        resolve(null);
      };
      this.waiters.add(wake);
      p.then(resolve, reject).finally(() => this.waiters.delete(wake));
    });
  }
}
