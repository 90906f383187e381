import type { ShardSpec } from '../core/keyset.js';
import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { filterConditions, orderBy, rangeConditions, whereClause, type Filters } from '../source/query.js';
import type { SourceTable } from '../source/table.js';
import { formatCount } from '../core/numbers.js';
import { boundEquals, shardId, TS_TEXT, type Bound } from '../core/keyset.js';

export interface PlanOptions {
  offsetKey: string;
  workers: number;
  rowsPerShard: number;
  /** Windows of at most this many rows are counted and ranked exactly; larger ones are sampled. */
  exactRowLimit?: number;
  /** Rows the sample aims for (default: about 1 000 a shard, 20 000 to 100 000). */
  sampleRows?: number;
  /** Seed of `TABLESAMPLE … REPEATABLE`, so the same data plans the same shards. */
  seed?: number;
  /**
   * rowsPerShard was not set: when a shard's read cannot use an index on the timestamp (every
   * shard is then a scan of the whole table), plan one shard per worker instead of one per
   * rowsPerShard rows, since each extra shard costs a whole extra scan.
   */
  autoShardSize?: boolean;
}

export interface ShardPlan {
  /** Exact for 'exact' and 'empty'; an estimate for 'sample' (sampled rows ÷ sampling rate) and 'statistics' (the planner's, for a one-shard plan). */
  totalRows: number;
  method: 'exact' | 'sample' | 'statistics' | 'empty';
  shards: ShardSpec[];
  /** How PostgreSQL reads a shard: a timestamp index range, or a scan of the whole table. */
  reads: 'index' | 'table-scan';
  /**
   * An index serves a narrow time range, but PostgreSQL reads shards as large as the planned ones
   * by a scan of the whole table, so they were planned one a worker (see planShards).
   */
  wideShards?: true;
}

/** Fewer rows than this per shard and the per-shard overhead (a query, a file) dominates. */
const MIN_SHARD_ROWS = 1000;
const DEFAULT_EXACT_LIMIT = 250_000;
const DEFAULT_SEED = 15;

interface Cut { bound: Bound; rank: number }

/**
 * Splits [start, end) into shards of about equal row counts. Bounds are (timestamp, key) rows, so
 * the shards tile the window with no gap or overlap whatever the counts say, and even millions of
 * rows at one instant split cleanly; only the balance depends on estimates.
 *
 * The cost does not grow with the window: small windows (by the planner's histogram estimate,
 * then a count capped at `exactRowLimit`) are ranked exactly; large ones are cut at the quantiles
 * of a `TABLESAMPLE SYSTEM` page sample whose rate targets a fixed number of rows.
 */
export async function planShards(client: pg.Client, t: SourceTable, f: Filters, start: Bound, end: Bound, o: PlanOptions): Promise<ShardPlan> {
  const plan = await planOnce(client, t, f, start, end, o, null);
  // A narrow range reads through an index, but PostgreSQL may read a shard of the planned size (a
  // large share of the table: a whole-table backfill) by a scan of all of it; then every shard
  // beyond one a worker is a whole extra scan of the table (2 M rows on one worker: two 1 M-row
  // shards read the table twice). Asked of the planned shards themselves, since only their real
  // bounds say what PostgreSQL will do with them.
  if (plan.reads === 'index' && o.autoShardSize === true && plan.shards.length > o.workers && (await scansWholeTable(client, t, f, plan.shards))) {
    return { ...(await planOnce(client, t, f, start, end, o, 'table-scan')), wideShards: true };
  }
  return plan;
}

async function planOnce(client: pg.Client, t: SourceTable, f: Filters, start: Bound, end: Bound, o: PlanOptions, readsKnown: ShardPlan['reads'] | null): Promise<ShardPlan> {
  const where = whereClause([...filterConditions(t, f), ...rangeConditions(t, start, end)]);
  const exactLimit = o.exactRowLimit ?? DEFAULT_EXACT_LIMIT;
  // Nothing new is the common case of a frequent schedule and of every idle `--follow` cycle:
  // one index probe says so, instead of the planner's estimates (each EXPLAIN probes the
  // index's ends) and the reads check below.
  if ((await cappedCount(client, t, where, 0)) === 0) return { totalRows: 0, method: 'empty', shards: [], reads: 'index' };
  // Estimated without the index pins: they change no row set, but the planner cannot see through
  // their `= ANY(<loose scan>)` and multiplies in a guessed selectivity (a namespace filter read
  // 25% low with its pin).
  let estimate = await histogramEstimate(client, t, whereClause([...filterConditions({ ...t, pins: { tenant: false, namespace: false } }, f), ...rangeConditions(t, start, end)]));
  /** False once a count proved the statistics low: the estimate is then a lower bound, not an estimate. */
  let statisticsHeld = true;
  const reads = readsKnown ?? (await shardReads(client, t, f, start, end, Math.min(1, o.rowsPerShard / Math.max(1, estimate))));
  const sizing = { ...o, perWorker: o.autoShardSize === true && reads === 'table-scan' };

  // Stale statistics can be off by orders of magnitude either way, so the estimate only picks the
  // first step; a capped count and the sample itself correct it.
  if (estimate <= exactLimit * 4) {
    const counted = await cappedCount(client, t, where, exactLimit);
    if (counted <= exactLimit) return exactPlan(client, t, where, start, end, counted, sizing, reads);
    statisticsHeld = estimate > exactLimit;
    estimate = Math.max(estimate, counted);
  }

  // One shard a worker and one worker: there is no cut to place, so a sample would only refine
  // the row count that progress shows, and its pass over the table (~150 ms at 2 M rows) would
  // delay the first row read. The planner's statistics give the count instead, unless the capped
  // count showed them low (then the sample below gives progress an honest total).
  if (sizing.perWorker && o.workers <= 1 && statisticsHeld) return { totalRows: estimate, method: 'statistics', shards: shardsFromCuts(start, end, [], estimate, o.offsetKey), reads };

  let sample: Bound[] = [];
  let total = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const target = o.sampleRows ?? Math.min(100_000, Math.max(20_000, Math.ceil(estimate / o.rowsPerShard) * 1000));
    const percent = Math.min(100, (100 * target) / Math.max(1, estimate));
    sample = await pageSample(client, t, where, percent, o.seed ?? DEFAULT_SEED);
    total = Math.round(sample.length / (percent / 100));
    if (percent >= 100) break; // every page was read: the count is exact
    if (sample.length >= target / 4) break;
    if (total <= exactLimit) {
      const counted = await cappedCount(client, t, where, exactLimit);
      if (counted <= exactLimit) return exactPlan(client, t, where, start, end, counted, sizing, reads);
    }
    estimate = Math.max(1, total, sample.length === 0 ? estimate * 0.01 : 0); // resample at the corrected rate
  }
  if (sample.length === 0) return { totalRows: 0, method: 'empty', shards: [], reads };

  const ranks = shardRanks(total, sizing);
  const cuts: Cut[] = [];
  for (const rank of ranks) {
    const b = sample[Math.min(sample.length - 1, Math.floor((rank / total) * sample.length))]!;
    const last = cuts[cuts.length - 1];
    if (last && boundEquals(last.bound, b)) continue;
    cuts.push({ bound: b, rank });
  }
  return { totalRows: total, method: 'sample', shards: shardsFromCuts(start, end, cuts, total, o.offsetKey), reads };
}

/**
 * Whether a shard's query can read just its range through an index on the timestamp. Asked of
 * the planner's cost estimates, with the shard's filters and columns, because only it can judge
 * views, partitions and multi-column indexes. An index that does not lead with the timestamp
 * serves a range on the timestamp alone only by a walk of the whole index (or PostgreSQL scans
 * the table), a large share of a full scan even for a sliver of the window, whereas a range read
 * of a timestamp index costs next to nothing. Kestra's indexes lead with tenant_id: there the
 * filters carry the tenant pin (source/pins.ts) and the sliver is an index range per tenant; its
 * loose scan's fixed cost still makes a table of a few tens of thousands of rows a 'table-scan',
 * which at that size costs nothing worth avoiding.
 */
async function shardReads(client: pg.Client, t: SourceTable, f: Filters, start: Bound, end: Bound, share: number): Promise<'index' | 'table-scan'> {
  const from = `${escapeLiteral(start.ts)}::timestamptz`;
  const to = `${from} + (${escapeLiteral(end.ts)}::timestamptz - ${from}) * ${(share / 1000).toFixed(12)}`;
  const sliver = await readCost(client, t, [...filterConditions(t, f), `${t.ts} >= ${from}`, `${t.ts} < ${to}`]);
  const whole = await readCost(client, t, filterConditions(t, f));
  return sliver < whole * 0.05 ? 'index' : 'table-scan';
}

/**
 * Whether PostgreSQL reads these shards (the first, middle and last) by a sequential scan of the
 * table: every node of the plan on the shard's own relation (alias `t`; the index pins' loose
 * scans read it under other aliases) is a Seq Scan.
 */
async function scansWholeTable(client: pg.Client, t: SourceTable, f: Filters, shards: ShardSpec[]): Promise<boolean> {
  const probes = [...new Set([0, Math.floor(shards.length / 2), shards.length - 1])].map((i) => shards[i]!);
  for (const s of probes) {
    const own = nodesOn(await explainRead(client, t, [...filterConditions(t, f), ...rangeConditions(t, s.lo, s.hi)]), 't');
    if (own.length === 0 || own.some((n) => !/Seq Scan$/.test(n['Node Type']))) return false;
  }
  return true;
}

interface PlanNode {
  'Node Type': string;
  'Total Cost': number;
  Alias?: string;
  Plans?: PlanNode[];
}

function nodesOn(node: PlanNode, alias: string): PlanNode[] {
  return [...(node.Alias === alias ? [node] : []), ...(node.Plans ?? []).flatMap((n) => nodesOn(n, alias))];
}

/** The planner's total cost of reading a shard's columns under these conditions. */
async function readCost(client: pg.Client, t: SourceTable, conditions: string[]): Promise<number> {
  return Number((await explainRead(client, t, conditions))['Total Cost']);
}

/** PostgreSQL's plan for reading a shard's columns under these conditions (not run). */
async function explainRead(client: pg.Client, t: SourceTable, conditions: string[]): Promise<PlanNode> {
  const r = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) SELECT ${t.key}, ${t.ts}, ${t.body} FROM ${t.name} t ${whereClause(conditions)}`);
  return r.rows[0]!['QUERY PLAN'][0].Plan;
}

/**
 * Ranks (0-based rows) at which the window is cut: about rowsPerShard rows a shard, at least one
 * shard a worker when rows allow. Not more: without an index on the timestamp every shard's query
 * is a scan of the whole table, so each extra shard costs a scan (10–15% of a 2 M-row export).
 */
function shardRanks(total: number, o: PlanOptions & { perWorker: boolean }): number[] {
  const wanted = o.perWorker ? o.workers : Math.max(Math.round(total / o.rowsPerShard), o.workers);
  const shardCount = Math.max(1, Math.min(wanted, Math.floor(total / MIN_SHARD_ROWS)));
  const step = total / shardCount;
  const ranks: number[] = [];
  for (let i = 1; i < shardCount; i++) ranks.push(Math.round(i * step));
  return ranks;
}

async function exactPlan(client: pg.Client, t: SourceTable, where: string, start: Bound, end: Bound, total: number, o: PlanOptions & { perWorker: boolean }, reads: ShardPlan['reads']): Promise<ShardPlan> {
  if (total === 0) return { totalRows: 0, method: 'empty', shards: [], reads };
  const ranks = shardRanks(total, o);
  const cuts = ranks.length > 0 ? await exactBounds(client, t, where, ranks) : [];
  return { totalRows: total, method: 'exact', shards: shardsFromCuts(start, end, cuts, total, o.offsetKey), reads };
}

function shardsFromCuts(start: Bound, end: Bound, cuts: Cut[], total: number, offsetKey: string): ShardSpec[] {
  const bounds: Bound[] = [start, ...cuts.map((c) => c.bound), end];
  const rankAt = [0, ...cuts.map((c) => c.rank), total];
  const shards: ShardSpec[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const lo = bounds[i]!;
    const hi = bounds[i + 1]!;
    if (boundEquals(lo, hi)) continue;
    shards.push({ index: shards.length, id: shardId(offsetKey, lo, hi), lo, hi, estimatedRows: Math.max(0, rankAt[i + 1]! - rankAt[i]!) });
  }
  return shards;
}

/** The planner's row estimate for the window (pg_stats histogram on the timestamp): no scan. */
async function histogramEstimate(client: pg.Client, t: SourceTable, where: string): Promise<number> {
  const r = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${t.name} t ${where}`);
  return Number(r.rows[0]!['QUERY PLAN'][0].Plan['Plan Rows']) || 0;
}

/** The window count's SQL (exported for the tests that EXPLAIN it). */
export function cappedCountSql(t: SourceTable, where: string, limit: number): string {
  return `SELECT count(*) AS n FROM (SELECT 1 FROM ${t.name} t ${where} LIMIT ${limit + 1}) s`;
}

/** count(*) that stops after limit + 1 rows, so a large window costs no more than a small one. */
async function cappedCount(client: pg.Client, t: SourceTable, where: string, limit: number): Promise<number> {
  const r = await client.query<{ n: string }>(cappedCountSql(t, where, limit));
  return Number(r.rows[0]!.n);
}

/**
 * Window rows from a `percent` sample of the table's pages, in keyset order. SYSTEM reads only
 * the sampled pages, so the cost follows the sample size, not the table's. A view or foreign
 * table has no pages to sample: there every row is read and a hash of its key keeps the same
 * share, still deterministically.
 */
async function pageSample(client: pg.Client, t: SourceTable, where: string, percent: number, seed: number): Promise<Bound[]> {
  // Rows, not one array_agg: parsing a 20 000-element text[] in Node cost more than the scan.
  const select = `SELECT ${TS_TEXT(t.ts)} AS ts, ${t.key}::text AS key FROM ${t.name} t`;
  const order = orderBy(t);
  try {
    return (await client.query<Bound & { key: string }>(`${select} TABLESAMPLE SYSTEM (${percent}) REPEATABLE (${seed}) ${where} ${order}`)).rows;
  } catch (err) {
    if ((err as { code?: string }).code !== '42809' && (err as { code?: string }).code !== '0A000') throw err;
    const hashed = `(hashtext(${t.key}::text) & 1048575) < ${Math.ceil((percent / 100) * 1048576)}`;
    return (await client.query<Bound & { key: string }>(`${select} ${where ? `${where} AND ${hashed}` : `WHERE ${hashed}`} ${order}`)).rows;
  }
}

async function exactBounds(client: pg.Client, t: SourceTable, where: string, ranks: number[]): Promise<Cut[]> {
  const r = await client.query<{ ts: string; key: string; rn: string }>(
    `SELECT ${TS_TEXT('s.ts')} AS ts, s.key, s.rn FROM (
       SELECT ${t.ts} AS ts, ${t.key}::text AS key, row_number() OVER (${orderBy(t)}) - 1 AS rn FROM ${t.name} t ${where}
     ) s WHERE s.rn = ANY('{${ranks.join(',')}}'::int8[]) ORDER BY s.rn`,
  );
  return r.rows.map((row) => ({ bound: { ts: row.ts, key: row.key }, rank: Number(row.rn) }));
}

/**
 * Said by `plan` and the run log when reads are scans and the window holds more than
 * max(rowsPerShard, `warnAbove`) rows a worker: shards had to grow (or, with rowsPerShard set,
 * each costs a scan). Below a million rows a worker a scan is too cheap to mention.
 */
export function tableScanWarning(t: SourceTable, plan: ShardPlan, o: Pick<PlanOptions, 'rowsPerShard' | 'workers' | 'autoShardSize'>, warnAbove = 1_000_000): string | null {
  // Wide shards: an index serves the ranges PostgreSQL reads through one; there is nothing to create.
  if (plan.reads !== 'table-scan' || plan.wideShards || plan.totalRows <= Math.max(o.rowsPerShard, warnAbove) * o.workers) return null;
  const column = t.ts.replace(/^t\./, '');
  const effect = o.autoShardSize
    ? `so logship plans one shard per worker (${plan.shards.length} of ~${formatCount(Math.round(plan.totalRows / Math.max(1, plan.shards.length)))} rows) instead of one per rowsPerShard rows, and a rerun after a crash redoes whole shards`
    : `so each of the ${plan.shards.length} shards (rowsPerShard is set) scans all of it`;
  return `source.table ${t.name} has no index PostgreSQL can use for a ${column} range: every shard's read scans the whole table, ${effect}; CREATE INDEX CONCURRENTLY ON ${t.name} (${column}) lets shards read only their range`;
}

