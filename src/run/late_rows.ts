import { checkBasis, compareBounds, lateCheckSql, maxKeyedRows } from '../shard/late_check.js';
import type { LateHit } from '../state/types.js';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';

import type { Config } from '../shard/config.js';
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';
import { boundEquals, shardId, type Bound } from '../core/keyset.js';
import type { ShardPlan } from '../plan/shards.js';
import type { ShardSpec } from '../core/keyset.js';
import { whereClause } from '../source/query.js';
import { type Snapshot } from '../source/snapshots.js';
import { SourceSession, type Db } from '../source/session.js';
import type { SourceTable } from '../source/table.js';
import type { ReadRange, RunManifest, ShardOutcome } from '../state/types.js';
import type { Logger } from '../core/log.js';
import type { RunReport } from './report.js';

import { shardReadRanges } from '../shard/snapshot_age.js';

/** The exported ranges still inside the horizon, as the run goes. */
export interface Ledger {
  reads: ReadRange[];
  /** now() - lateRows.horizon by the database clock; null when late rows are off. */
  horizonStart: string | null;
}

export async function currentSnapshot(client: pg.Client): Promise<string> {
  return (await client.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s;
}

/**
 * The ledger after a run: a window's shards join it with the snapshots they were read in (one
 * range per snapshot when a read renewed it, see shardReadRanges; a window
 * that planned no shards joins as one range, covered by the snapshot taken before planning); a
 * catch-up moves each range it re-read to its newer snapshot (or splits it, see shardReadRanges). Ranges that ended before the
 * horizon leave it.
 */
export function nextReads(config: Config, run: RunManifest, done: Map<number, ShardOutcome>, ledger: Ledger): ReadRange[] {
  const start = ledger.horizonStart;
  if (start === null) return [];
  let reads: ReadRange[];
  if (run.kind === 'late') {
    const moved = new Map<string, ReadRange[]>();
    for (const shard of run.shards) {
      const outcome = done.get(shard.index);
      if (!shard.late || !outcome) continue;
      // One range, unless the catch-up skipped a prefix an earlier attempt acknowledged: then
      // that prefix keeps the snapshot it was read in, under new ids (`${shard.id}-r${i}`).
      const late = shard.late;
      const pieces = shardReadRanges(shard, outcome).map((r, i) => ({ ...r, id: i === 0 ? late.of : r.id, late: late.n }));
      if (pieces.length > 0) moved.set(late.of, pieces);
    }
    reads = ledger.reads.flatMap((r) => {
      const pieces = moved.get(r.id);
      if (!pieces) return [r];
      const caughtUpTo = pieces.at(-1)!.hi;
      // The range grew after its catch-up was planned (this cycle's empty window extended it,
      // see below): the catch-up read none of that growth, which keeps the range's own snapshot.
      if (compareBounds(caughtUpTo, r.hi) >= 0) return pieces;
      return [...pieces, { ...r, id: `${r.id}-x${pieces[0]!.late}`, lo: caughtUpTo, late: 0 }];
    });
  } else {
    const added: ReadRange[] = [];
    for (const shard of run.shards) {
      const outcome = done.get(shard.index);
      if (outcome) added.push(...shardReadRanges(shard, outcome));
    }
    reads = [...ledger.reads, ...added];
    if (run.shards.length === 0 && run.snapshot) {
      const { start: lo, end: hi } = run.window;
      const last = reads.at(-1);
      // An empty window extends the range before it, which keeps its older snapshot: no row of
      // the window was visible to this window's snapshot, so every row there now committed after
      // it, and so after the older one too; the check finds exactly the same rows. Without this a
      // follow loop's idle cycles each added a range, and the ledger (stored every cycle) grew
      // to one entry per interval of the horizon.
      if (last && boundEquals(last.hi, lo)) reads[reads.length - 1] = { ...last, hi };
      else reads.push({ id: shardId(config.offsetKey, lo, hi), lo, hi, snapshot: run.snapshot, late: 0 });
    }
  }
  return reads.filter((r) => r.hi.ts > start);
}

/** The separate late check's query (exported for the tests that EXPLAIN it): see rangesWithLateRows. */
export function lateRowsSql(t: SourceTable, config: Config, ranges: ReadRange[], now: Snapshot, stable: bigint): { sorted: ReadRange[]; sql: string } {
  // The inner query yields the row's time and key under their own names (so t.ts and t.keyOrdered
  // still apply to it) and its age once; OFFSET 0 keeps the planner from inlining it into every
  // branch of the tree.
  const { sorted, conditions, tree } = lateCheckSql(t, config, ranges, now, stable, 't.logship_age');
  const rows = `SELECT ${t.ts}, ${t.key}, age(t.xmin) AS logship_age FROM ${t.name} t ${whereClause(conditions)} OFFSET 0`;
  return {
    sorted,
    sql: `SELECT s.i, CASE WHEN count(*) <= ${maxKeyedRows()} THEN array_agg(s.k) END AS keys
       FROM (SELECT ${tree} AS i, ${t.key}::text AS k FROM (${rows}) t) s WHERE s.i IS NOT NULL GROUP BY s.i`,
  };
}

/** The ranges holding rows committed after their snapshot, in ONE scan of the horizon. */
async function rangesWithLateRows(client: pg.Client, t: SourceTable, config: Config, ranges: ReadRange[], now: Snapshot, stable: bigint): Promise<LateHit[]> {
  const { sorted, sql } = lateRowsSql(t, config, ranges, now, stable);
  const r = await client.query<{ i: number; keys: string[] | null }>(sql);
  // A row in a gap between stored ranges can only flag a neighbour, whose late read then finds
  // nothing of its own: the key list is a hint, the range conditions still apply.
  return r.rows.map((row) => ({
    range: sorted[row.i]!,
    // A key that did not arrive intact (non-UTF-8 bytes in a SQL_ASCII database) cannot be looked up.
    keys: row.keys && !row.keys.some((k) => k.includes('\uFFFD')) ? row.keys : null,
  }));
}

/** What one check of the ledger found: the ranges holding late rows, as seen from snapshot `until`. */
export interface LateFinding {
  until: string;
  hits: LateHit[];
}

/** Ranges a check had to leave out: read too many transactions ago to compare xmins. */
export function warnUncheckable(reads: ReadRange[], checkedIds: ReadonlySet<string>, log: Logger): void {
  for (const r of reads) {
    if (!checkedIds.has(r.id)) log.warn({ range: r.id }, 'range read too many transactions ago (over 2^31) to tell late rows apart by xmin; it is no longer checked');
  }
}

/**
 * Finds the ranges of `reads` that hold rows committed after their snapshot, in one scan of the
 * horizon read in one snapshot (`until`), so the late rows it finds are exactly those `until`
 * shows. Read-only and safe to run again from the start, so a lost connection just reruns it.
 */
export async function findLateRows(db: Db, table: SourceTable, config: Config, reads: ReadRange[], report: RunReport, log: Logger): Promise<LateFinding | null> {
  if (reads.length === 0) return null;
  const started = Date.now();
  const finding = await db.run(async (c) => {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const until = await currentSnapshot(c);
      const { now, stable, candidates } = await checkBasis(c, until, reads);
      const hits = candidates.length > 0 ? await rangesWithLateRows(c, table, config, candidates, now, stable) : [];
      return { until, hits, checked: candidates };
    } finally {
      await c.query('COMMIT');
    }
  });
  warnUncheckable(reads, new Set(finding.checked.map((r) => r.id)), log);
  report.late.rangesChecked += finding.checked.length;
  report.late.checkMs += Date.now() - started;
  return { until: finding.until, hits: finding.hits };
}

/** The late run that exports what a check found, as extra shards `${id}-late${n}` of their ranges; null when nothing is late. */
export function lateRun(finding: LateFinding | null, offset: Bound, report: RunReport, log: Logger): RunManifest | null {
  if (!finding || finding.hits.length === 0) return null;
  const shards: ShardSpec[] = finding.hits.map(({ range: r, keys }, index) => ({
    index, id: `${r.id}-late${r.late + 1}`, lo: r.lo, hi: r.hi, estimatedRows: keys?.length ?? 0,
    late: { of: r.id, n: r.late + 1, since: r.snapshot, ...(keys ? { keys, until: finding.until } : {}) },
  }));
  report.late.rangesCaughtUp += shards.length;
  const run: RunManifest = {
    runId: randomUUID(), createdAt: new Date().toISOString(), kind: 'late',
    window: { start: offset, end: offset }, totalRows: 0, shards,
  };
  log.info({ runId: run.runId, ranges: shards.length }, 'late rows found in exported ranges; exporting them as extra parts of their shards');
  return run;
}

/**
 * The late-row check of the ledger's ranges (those of earlier runs). The ranges lie before the
 * offset, where the window's shards never read, so it needs nothing from them. Three ways, the
 * cheapest that applies:
 * - carried by the window's first shard when every shard scans the whole table anyway (no index
 *   serves a timestamp range): its query also selects the late rows (shardSelect's `late`), one
 *   condition per row instead of a second scan of the table;
 * - on a session of its own beside the window's shards, when the server has one to spare;
 * - on the main session once the window is done (the state store then has no use for it).
 * A carried check that did not finish (its shard stopped at a deadline, say) runs the last way.
 */
export class LateCheck {
  private session: SourceSession | null = null;
  /** The check beside the window; it resolves to undefined when no session could be opened for it. */
  private early: Promise<LateFinding | null | undefined> | null = null;
  private carried: LateFinding | null = null;

  private constructor(
    private readonly check: (db: Db) => Promise<LateFinding | null>,
    /** The window shard that carries the check, and the ranges it checks; null when none does. */
    private readonly carrier: { shard: number; reads: ReadRange[] } | null,
    private readonly report: RunReport,
    private readonly log: Logger,
  ) {}

  static start(config: Config, table: SourceTable, ledger: Ledger, spareSessions: number, report: RunReport, log: Logger, plan: ShardPlan | null): LateCheck | null {
    if (ledger.horizonStart === null || ledger.reads.length === 0) return null;
    const reads = [...ledger.reads];
    const check = (db: Db) => findLateRows(db, table, config, reads, report, log);
    if (plan && plan.reads === 'table-scan' && plan.shards.length > 0 && config.source.stream === 'copy') {
      log.info({ ranges: reads.length, session: 'shard', shard: plan.shards[0]!.index }, 'every shard scans the whole table: the first one also checks the exported ranges for late rows');
      return new LateCheck(check, { shard: plan.shards[0]!.index, reads }, report, log);
    }
    const c = new LateCheck(check, null, report, log);
    const concurrent = spareSessions >= 1;
    log.info({ ranges: reads.length, session: concurrent ? 'own' : 'main' }, concurrent
      ? 'checking exported ranges for late rows on a session of its own, beside the window'
      : 'no session to spare: exported ranges are checked for late rows after the window, on the main session');
    if (concurrent) {
      c.early = SourceSession.open(config.source, 'late-rows').then((s) => c.check((c.session = s)), (err: unknown) => {
        // The session counted as spare was gone when asked for: the check runs after the window.
        log.info({ error: redact(errorMessage(err)) }, 'no session to spare for the late-row check beside the window: it runs once the window is done');
        return undefined;
      });
      // Awaited after the window; until then its failure must not count as unhandled.
      c.early.catch(() => {});
    }
    return c;
  }

  /** The ranges shard `index` checks in its own scan, if it carries the check. */
  readsFor(index: number): ReadRange[] | undefined {
    return this.carrier?.shard === index ? this.carrier.reads : undefined;
  }

  /** What the carrying shard's scan found (ShardOutcome.lateCheck). */
  carriedBy(found: NonNullable<ShardOutcome['lateCheck']>): void {
    if (!this.carrier) return;
    warnUncheckable(this.carrier.reads, new Set(found.checked), this.log);
    this.report.late.rangesChecked += found.checked.length;
    this.carried = { until: found.until, hits: found.hits };
  }

  /** What the check found: carried, beside the window, or (when neither ran) now, on `main`. */
  async finding(main: Db): Promise<LateFinding | null> {
    if (this.carried) return this.carried;
    const early = this.early ? await this.early : undefined;
    return early === undefined ? this.check(main) : early;
  }

  async close(): Promise<void> {
    await this.session?.end();
  }
}
