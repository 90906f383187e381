/**
 * When a run stops early: at its deadline (`maxDuration`) or on SIGTERM/SIGINT. Shards that have
 * not started are left to the next run; running shards are told to stop at their next batch
 * (they abort their parts and roll back, exactly as a failed attempt does), and every finished
 * shard is checkpointed, so a rerun resumes with nothing lost and nothing duplicated.
 */
import type { Logger } from '../core/log.js';

export type StopReason = 'deadline' | 'SIGTERM' | 'SIGINT';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Signal exit codes, 128 + the signal number, as shells report them. */
export const SIGNAL_EXIT: Record<Exclude<StopReason, 'deadline'>, number> = { SIGINT: 130, SIGTERM: 143 };

/** Milliseconds per row of the shards finished so far: what the next shard is expected to take. */
export class ShardPace {
  private rows = 0;
  private ms = 0;

  record(rows: number, ms: number): void {
    this.rows += rows;
    this.ms += ms;
  }

  /** Null until a shard has finished: there is nothing to go by yet. */
  expectedMs(rows: number): number | null {
    if (this.rows === 0 && this.ms === 0) return null;
    return (this.ms / Math.max(1, this.rows)) * Math.max(1, rows);
  }
}

export interface StopOptions {
  clock?: Clock;
  /** The run's whole budget, from `startedAt`; null = no deadline. */
  maxDurationMs: number | null;
  /** Running shards are stopped this long before the deadline, leaving time to checkpoint. */
  stopGraceMs: number;
  startedAt?: number;
}

export class StopControl {
  reason: StopReason | null = null;
  private readonly clock: Clock;
  /** Past this instant no shard runs: deadline − stopGrace. */
  private readonly cutoff: number | null;
  private readonly running = new Set<() => void>();
  private timer: NodeJS.Timeout | null = null;
  private cutOff = false;

  constructor(o: StopOptions) {
    this.clock = o.clock ?? systemClock;
    const started = o.startedAt ?? this.clock.now();
    this.cutoff = o.maxDurationMs === null ? null : started + o.maxDurationMs - o.stopGraceMs;
  }

  /**
   * Whether a shard expected to take `expectedMs` (null: unknown yet) may start. A shard that
   * would still be running at the cutoff is not started: it would only be thrown away.
   */
  mayStart(expectedMs: number | null): boolean {
    if (this.reason !== null) return false;
    if (this.cutoff === null) return true;
    const left = this.cutoff - this.clock.now();
    if (left <= 0 || (expectedMs !== null && expectedMs > left)) {
      this.reason = 'deadline';
      return false;
    }
    return true;
  }

  /** Whether running shards have been told to stop (so their failures are not failures). */
  get stopping(): boolean {
    return this.cutOff;
  }

  /** A running shard registers how to stop it; the returned function unregisters it. */
  track(stop: () => void): () => void {
    if (this.cutOff) stop();
    this.running.add(stop);
    return () => this.running.delete(stop);
  }

  /** Arms the cutoff timer; `disarm` must be called when the run ends. */
  arm(): void {
    if (this.cutoff === null || this.timer) return;
    this.timer = setTimeout(() => this.stopRunning('deadline'), Math.max(0, this.cutoff - this.clock.now()));
    this.timer.unref();
  }

  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A signal: stop now, running shards included. */
  request(reason: StopReason): void {
    this.stopRunning(reason);
  }

  private stopRunning(reason: StopReason): void {
    // A signal outranks the deadline: it decides the exit code.
    if (this.reason === null || reason !== 'deadline') this.reason = reason;
    this.cutOff = true;
    for (const stop of this.running) stop();
  }
}

/**
 * SIGTERM and SIGINT for a long command: the first asks `stop` to stop gracefully (and logs
 * `stopping`); a second, once stopping, exits at once with the signal's code (after `exiting`, if
 * given), leaving what a kill -9 leaves, which the state and the queue resume from. Returns the
 * function that removes the listeners.
 */
/** What a signal stops: a run's StopControl, or a `--follow` loop (which passes it to the cycle in flight). */
export interface Stoppable {
  readonly reason: StopReason | null;
  readonly stopping: boolean;
  request(reason: StopReason): void;
}

export function onStopSignals(stop: Stoppable, o: { log: Logger; stopping: string; exiting?: string }): () => void {
  const onSignal = (signal: Exclude<StopReason, 'deadline'>) => {
    if (stop.stopping && stop.reason !== 'deadline') {
      if (o.exiting) process.stderr.write(`logship: second ${signal}: ${o.exiting}\n`);
      process.exit(SIGNAL_EXIT[signal]);
    }
    o.log.warn({ signal }, o.stopping);
    stop.request(signal);
  };
  const onTerm = () => onSignal('SIGTERM');
  const onInt = () => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  return () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  };
}

