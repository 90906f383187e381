import type pg from 'pg';
import type { Config } from '../shard/config.js';
import type { Bound } from '../core/keyset.js';
import { planShards, type ShardPlan } from '../plan/shards.js';
import { computeWindow, type ExportWindow } from '../plan/window.js';
import { filtersOf } from '../shard/config.js';
import type { SourceTable } from '../source/table.js';

/** What `tune`'s trials read: one fixed range, the same for every trial. */
export interface TuneSample {
  /**
   * 'window': rows of the window the next run would export (its first rows, or all of it).
   * 'history': the window holds fewer rows than wanted (the offset is current), so the rows
   * just before now() - safetyLag, reaching back before the window into rows already exported;
   * the trials write them to a temporary directory under their own offsetKey, so the stored
   * offset does not move either way.
   */
  source: 'window' | 'history';
  window: ExportWindow;
  /** The planner's count of the range's rows: exact up to 250 k rows, estimated above. */
  plannedRows: number;
}

/** Windows may not start before year 1 (see window.ts), so this bound stands for "from the first row". */
export const HISTORY_START: Bound = { ts: '0001-01-01T00:00:00.000000Z', key: null };

/**
 * Finds a range of about `rows` rows with the run's own planner: its cost does not grow with the
 * table (a capped count and an exact ranking up to 250 k rows, a page sample above), where
 * `ORDER BY ts, key OFFSET n` sorted the whole window. The cut falls on one of the planner's shard
 * bounds, spaced about a tenth of `rows` apart, so the sample is within ~5% of `rows` (at least
 * the planner's smallest shard, 1 000 rows, apart on small tables).
 */
export async function locateSample(client: pg.Client, table: SourceTable, config: Config, offset: Bound | null, rows: number): Promise<TuneSample> {
  const plan = (start: Bound, end: Bound) => planShards(client, table, filtersOf(config), start, end, {
    offsetKey: 'logship-tune', workers: 1, rowsPerShard: Math.max(1, Math.ceil(rows / 10)), autoShardSize: false,
  });
  const window = await computeWindow(client, offset, config.lookbackPeriod, config.safetyLag);
  let inWindow = 0;
  if (window) {
    const p = await plan(window.start, window.end);
    inWindow = p.totalRows;
    if (p.totalRows >= rows) {
      const cut = nearest(bounds(p).slice(1), rows);
      return { source: 'window', window: { ...window, end: cut.bound }, plannedRows: cut.rank };
    }
  }
  // The window's end whatever the offset: computeWindow with no offset cannot be empty, since
  // the config refuses a lookbackPeriod that is not longer than safetyLag.
  const edges = await computeWindow(client, null, config.lookbackPeriod, config.safetyLag);
  if (!edges) throw new Error('now() - safetyLag is before now() - lookbackPeriod: nothing to sample');
  const p = await plan(HISTORY_START, edges.end);
  if (p.totalRows === 0) throw new Error(`the table holds no rows before now() - safetyLag (${edges.end.ts}) that the config's filters keep: nothing to sample`);
  const cut = nearest(bounds(p).slice(0, -1), p.totalRows - rows);
  const taken = p.totalRows - cut.rank;
  // Nothing older than the window to add (no offset yet, and the table is younger than lookbackPeriod): all of the window.
  if (window && inWindow > 0 && taken <= inWindow) return { source: 'window', window, plannedRows: inWindow };
  return { source: 'history', window: { start: cut.bound, end: edges.end, fromLookback: false }, plannedRows: taken };
}

/** Every shard bound of the plan with its rank (rows before it), first start to last end. */
function bounds(p: ShardPlan): { bound: Bound; rank: number }[] {
  const out = [{ bound: p.shards[0]!.lo, rank: 0 }];
  let rank = 0;
  for (const s of p.shards) out.push({ bound: s.hi, rank: (rank += s.estimatedRows) });
  return out;
}

function nearest<T extends { rank: number }>(candidates: T[], rank: number): T {
  return candidates.reduce((a, b) => (Math.abs(b.rank - rank) < Math.abs(a.rank - rank) ? b : a));
}
