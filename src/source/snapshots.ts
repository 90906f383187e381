/**
 * Late rows are found by transaction visibility, not by timestamps: a shard is read in a
 * REPEATABLE READ transaction whose snapshot (`pg_current_snapshot()`) is recorded, and a later
 * read selects the shard's rows that snapshot could not see. A row's `xmin` is a 32-bit xid, so
 * "could not see" is expressed on 32-bit values: the xids assigned between the old snapshot's
 * xmax and the current one's (a modular interval, so an xid wraparound in between is handled),
 * plus the xids the old snapshot listed as in progress.
 */
import type { Bound } from '../core/keyset.js';

export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: bigint[];
}

/**
 * Where a read in `snapshot` covers a shard from: a shard read in several snapshots is a list of
 * these, in order, the first starting at the shard's lo; each runs to the next one's `lo` (or the
 * shard's hi). See shardReadRanges.
 */
export interface SnapshotPiece {
  lo: Bound;
  snapshot: string;
}

const WRAP = 1n << 32n;
/** Beyond this many xids between the two snapshots, 32-bit xmin values become ambiguous. */
export const MAX_XID_DISTANCE = 1n << 31n;

export function parseSnapshot(text: string): Snapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text);
  if (!m) throw new Error(`not a pg_snapshot: ${JSON.stringify(text)}`);
  return { xmin: BigInt(m[1]!), xmax: BigInt(m[2]!), xip: m[3] ? m[3].split(',').map(BigInt) : [] };
}

/** pg_snapshot's text form, as parseSnapshot reads it. */
export function formatSnapshot(s: Snapshot): string {
  return `${s.xmin}:${s.xmax}:${s.xip.join(',')}`;
}

/** Whether rows older than `since` can still be told apart by their 32-bit xmin from `now`. */
export function comparable(since: Snapshot, now: Snapshot): boolean {
  return now.xmax >= since.xmax && now.xmax - since.xmin < MAX_XID_DISTANCE;
}

/** A row's 32-bit xmin as int8 (xid has no ordering operators and no cast to a number). */
export const XMIN8 = 't.xmin::text::int8';

/**
 * SQL condition: the row was committed after `since` was taken (invisible to it), seen from a
 * read whose snapshot is `now`. xmin values 0-2 (invalid, bootstrap, frozen) are always old.
 * `xmin8` is the row's xmin as int8 (an expression, or a column that already holds it).
 */
export function committedAfter(since: Snapshot, now: Snapshot, xmin8 = XMIN8): string {
  const x = xmin8;
  const a = since.xmax % WRAP;
  const b = now.xmax % WRAP;
  const parts: string[] = [];
  if (a < b) parts.push(`(${x} >= ${a} AND ${x} < ${b})`);
  else if (a > b) parts.push(`(${x} >= ${a} OR ${x} < ${b})`);
  const inProgress = since.xip.map((v) => String(v % WRAP));
  if (inProgress.length > 0) parts.push(`${x} IN (${inProgress.join(', ')})`);
  if (parts.length === 0) return 'false';
  return `(${x} >= 3 AND (${parts.join(' OR ')}))`;
}

/**
 * A snapshot that saw no more than any of `snapshots`: the earliest xmax and every xid any of them
 * listed as in progress. A row committed after one of them is committed after this one, so
 * `committedAfter(oldestOf(…), now)` is a cheap superset test of the ranges' own tests.
 */
export function oldestOf(snapshots: Snapshot[]): Snapshot {
  const xmax = snapshots.reduce((m, s) => (s.xmax < m ? s.xmax : m), snapshots[0]!.xmax);
  const xmin = snapshots.reduce((m, s) => (s.xmin < m ? s.xmin : m), snapshots[0]!.xmin);
  return { xmin, xmax, xip: [...new Set(snapshots.flatMap((s) => s.xip))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
}

/** What age() gives every xid that is not normal (0-2: invalid, bootstrap, frozen): "infinitely old". */
const AGE_OF_FROZEN = (1n << 31n) - 1n;

/**
 * The xid a reader's age() measures from (its transaction's stable latest xid), as a 64-bit xid
 * next to `now`: from the age a query in the same transaction gave one normal xid, `probe`.
 */
export function stableXid(now: Snapshot, probe: bigint, ageOfProbe: number): bigint {
  const low = (probe % WRAP + BigInt(ageOfProbe) + WRAP) % WRAP;
  return now.xmax + ((low - (now.xmax % WRAP) + WRAP) % WRAP);
}

/** Whether every xid `since` could not see still has an age() below "frozen" from `stable`. */
export function comparableByAge(since: Snapshot, stable: bigint): boolean {
  return stable >= since.xmax && stable - since.xmin < AGE_OF_FROZEN;
}

/**
 * committedAfter() in terms of the row's age() (`age(t.xmin)`, an int4 computed without the text
 * round trip that `xmin::text::int8` costs: on a 2 M-row scan that conversion was half the time).
 * With `stable` the reader's stable xid (stableXid()), an xid x is assigned in [since.xmax,
 * now.xmax) exactly when stable - x lies in [stable - now.xmax + 1, stable - since.xmax]; frozen and
 * special xids have age 2^31 - 1, beyond every bound here (comparableByAge() holds).
 */
export function committedAfterByAge(since: Snapshot, now: Snapshot, stable: bigint, age = 'age(t.xmin)'): string {
  const parts: string[] = [];
  if (since.xmax < now.xmax) parts.push(`(${age} <= ${stable - since.xmax} AND ${age} > ${stable - now.xmax})`);
  if (since.xip.length > 0) parts.push(`${age} IN (${since.xip.map((v) => String(stable - v)).join(', ')})`);
  return parts.length === 0 ? 'false' : `(${parts.join(' OR ')})`;
}
