import { knobs } from '../core/knobs.js';
import type { LateHit } from '../state/types.js';

import type pg from 'pg';
import { escapeLiteral } from 'pg';
import type { Config } from './config.js';

import { TS_TEXT, type Bound } from '../core/keyset.js';

import { filterConditions, rangeConditions } from '../source/query.js';
import { committedAfterByAge, comparable, comparableByAge, oldestOf, parseSnapshot, stableXid, type Snapshot } from '../source/snapshots.js';

import type { SourceTable } from '../source/table.js';
import type { ReadRange } from '../state/types.js';

import { filtersOf, lateRowsEnabled } from './config.js';


/** now() - lateRows.horizon by the database clock: where the late-row ledger starts; null when late rows are off. */
export async function horizonStart(client: pg.Client, config: Pick<Config, 'lateRows'>): Promise<string | null> {
  if (!lateRowsEnabled(config)) return null;
  const r = await client.query<{ t: string }>(`SELECT ${TS_TEXT('now() - $1::interval')} AS t`, [config.lateRows.horizon]);
  return r.rows[0]!.t;
}

/** Bounds in (timestamp, key) order, each once. */
export function distinctBounds(bounds: Bound[]): Bound[] {
  return [...bounds].sort(compareBounds).filter((b, i, all) => i === 0 || compareBounds(b, all[i - 1]!) !== 0);
}

/** (timestamp, key) order; a null key sorts before every key at its instant. */
export function compareBounds(a: Bound, b: Bound): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.key === b.key) return 0;
  if (a.key === null) return -1;
  if (b.key === null) return 1;
  return Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));
}

/** SQL: the row sorts before `b` in (timestamp, key) order. */
function before(t: SourceTable, b: Bound): string {
  const ts = `${escapeLiteral(b.ts)}::timestamptz`;
  return b.key === null ? `${t.ts} < ${ts}` : `(${t.ts}, ${t.keyOrdered}) < (${ts}, ${escapeLiteral(b.key)}::${t.keyType})`;
}

/**
 * The SQL of one check of `ranges` as seen from snapshot `now`: `conditions` select the rows of
 * the ranges' union that may be late, `tree` (an int expression) names the range a row is late
 * for, by its index in `sorted`, or is NULL. Each row finds its range by a binary search written
 * as nested CASEs (log2(ranges) comparisons), then that range's visibility test decides. One
 * EXISTS per range would scan the table once per range wherever no timestamp index serves it.
 * `age` is the row's age(xmin), as an expression or a column that holds it.
 */
export function lateCheckSql(t: SourceTable, config: Config, ranges: ReadRange[], now: Snapshot, stable: bigint, age = 'age(t.xmin)'): { sorted: ReadRange[]; conditions: string[]; tree: string } {
  const sorted = [...ranges].sort((a, b) => compareBounds(a.lo, b.lo));
  const lo = sorted[0]!.lo;
  const hi = sorted.reduce((m, r) => (compareBounds(r.hi, m) > 0 ? r.hi : m), sorted[0]!.hi);
  // Nearly every row is old: one age() test against the union of the ranges' snapshots drops it
  // before the range's row comparisons, and the tree, are evaluated at all.
  const anyLate = committedAfterByAge(oldestOf(sorted.map((r) => parseSnapshot(r.snapshot))), now, stable, 'age(t.xmin)');
  const leaf = (i: number) => `CASE WHEN ${committedAfterByAge(parseSnapshot(sorted[i]!.snapshot), now, stable, age)} THEN ${i} END`;
  const tree = (from: number, to: number): string => {
    if (to - from === 1) return leaf(from);
    const mid = (from + to) >> 1;
    return `CASE WHEN ${before(t, sorted[mid]!.lo)} THEN ${tree(from, mid)} ELSE ${tree(mid, to)} END`;
  };
  return { sorted, conditions: [anyLate, ...filterConditions(t, filtersOf(config)), ...rangeConditions(t, lo, hi)], tree: tree(0, sorted.length) };
}

/**
 * Up to this many late rows per range are looked up by key; more are read by a scan of the range.
 * Tests lower it to exercise the scan path.
 */
export function maxKeyedRows(): number {
  return knobs.maxKeyedLateRows;
}

/**
 * What a check needs from the transaction it reads in (REPEATABLE READ, before its scan, whose
 * snapshot is `until`): the xid its age() measures from, and the ranges whose rows it can still tell apart.
 */
export async function checkBasis(c: pg.Client, until: string, reads: ReadRange[]): Promise<{ now: Snapshot; stable: bigint; candidates: ReadRange[] }> {
  const now = parseSnapshot(until);
  // age() measures from an xid fixed at its first call in a transaction: learn it from one
  // normal xid's age, here, so the check's bounds are ages from the same xid.
  const probe = now.xmax % (1n << 32n) >= 4n ? now.xmax - 1n : now.xmax - 4n;
  const probed = await c.query<{ a: number }>('SELECT age($1::text::xid) AS a', [String(probe % (1n << 32n))]);
  const stable = stableXid(now, probe, probed.rows[0]!.a);
  const candidates = reads.filter((r) => comparable(parseSnapshot(r.snapshot), now) && comparableByAge(parseSnapshot(r.snapshot), stable));
  return { now, stable, candidates };
}

/**
 * Late rows met by a window shard's scan that also checks the ledger (lateCheckSql folded into
 * the shard's query, see shardSelect): per range, the rows and, up to maxKeyedRows(), their keys.
 */
export class LateKeys {
  private readonly byRange = new Map<number, { rows: number; keys: string[] | null }>();

  add(range: number, keyBytes: Buffer, start: number, end: number): void {
    let entry = this.byRange.get(range);
    if (!entry) this.byRange.set(range, (entry = { rows: 0, keys: [] }));
    entry.rows++;
    if (entry.keys === null) return;
    // A NULL key or one that is not UTF-8 cannot be looked up: the range is then scanned.
    const key = start < 0 ? null : keyBytes.toString('utf8', start, end);
    if (key === null || key.includes('\uFFFD') || entry.rows > maxKeyedRows()) entry.keys = null;
    else entry.keys.push(key);
  }

  hits(sorted: ReadRange[]): LateHit[] {
    return [...this.byRange].sort((a, b) => a[0] - b[0]).map(([i, e]) => ({ range: sorted[i]!, keys: e.keys }));
  }
}

/** An ordered scan that has delivered the row at `position` has met every row of `ranges`. */
export function scannedPast(position: Bound, ranges: ReadRange[]): boolean {
  return ranges.every((r) => compareBounds(r.hi, position) <= 0);
}
