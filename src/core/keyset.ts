import { createHash } from 'node:crypto';
import type pg from 'pg';

export interface ShardSpec {
  index: number;
  id: string;
  lo: Bound;
  hi: Bound;
  /** Exact when the plan's method is 'exact', an estimate from the sample otherwise. */
  estimatedRows: number;
  /**
   * A late catch-up of exported range `of`: only its rows committed after `since` was taken. With
   * `keys` (found by the catch-up's check, read in snapshot `until`), exactly those rows, looked up
   * by key, and the range then moves to `until`; without, every row the shard's own snapshot shows.
   */
  late?: { of: string; n: number; since: string; keys?: string[]; until?: string };
}

/**
 * A position in (timestamp, key) order. `key: null` means "before every key at that instant",
 * which is how window ends and partition cuts are expressed. Timestamps are kept as UTC text
 * with microseconds because JavaScript dates would round PostgreSQL's microseconds away.
 */
export interface Bound {
  ts: string;
  key: string | null;
}

/** SQL that renders a timestamp column as the text form Bound.ts uses. */
export const TS_TEXT = (expr: string) => `to_char(${expr}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export function tsToMicros(ts: string): number {
  // "2026-11-22T01:02:03.123456Z": milliseconds via Date, the last three digits by hand.
  const ms = Date.parse(`${ts.slice(0, 23)}Z`);
  if (Number.isNaN(ms)) throw new Error(`bad timestamp ${ts}`);
  return ms * 1000 + (ts.length >= 27 ? Number(ts.slice(23, 26)) : 0);
}

export function microsToTs(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // 2026-11-22T01:02:03.123Z
  return `${iso.slice(0, 23)}${String(micros - ms * 1000).padStart(3, '0')}Z`;
}

/** Compact, file-name-safe form of a bound's instant: 20261122T010203Z. */
export function compactTs(ts: string): string {
  return `${ts.slice(0, 4)}${ts.slice(5, 7)}${ts.slice(8, 10)}T${ts.slice(11, 13)}${ts.slice(14, 16)}${ts.slice(17, 19)}Z`;
}

export function boundEquals(a: Bound, b: Bound): boolean {
  return a.ts === b.ts && a.key === b.key;
}

/** Deterministic shard id from its exact bounds, so a rerun of the same shard writes the same names. */
export function shardId(offsetKey: string, lo: Bound, hi: Bound): string {
  const h = createHash('sha256').update(JSON.stringify([offsetKey, lo, hi])).digest('hex').slice(0, 8);
  return `${compactTs(lo.ts)}-${h}`;
}

