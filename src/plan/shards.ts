import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { filterConditions, orderBy, rangeConditions, whereClause, type Filters } from '../source/query.js';
import type { SourceTable } from '../source/table.js';
import { boundEquals, shardId, TS_TEXT, type Bound } from './keyset.js';
import type { Granularity } from '../sinks/naming.js';

export interface ShardSpec {
  index: number;
  id: string;
  lo: Bound;
  hi: Bound;
  estimatedRows: number;
}

export interface PlanOptions {
  offsetKey: string;
  workers: number;
  rowsPerShard: number;
  /** Cut shards at event-time partition edges so no file spans two partitions. */
  granularity: Granularity | null;
  /** Up to this many rows the planner ranks rows exactly; above, it samples. */
  exactRowLimit?: number;
  sampleRows?: number;
}

export interface ShardPlan {
  totalRows: number;
  method: 'exact' | 'sample' | 'empty';
  shards: ShardSpec[];
}

/** Fewer rows than this per shard and the per-shard overhead (a query, a file) dominates. */
const MIN_SHARD_ROWS = 1000;

interface Cut { bound: Bound; rank: number; forced: boolean }

/**
 * Splits [start, end) into shards of about equal row counts. Bounds are (timestamp, key) rows, so
 * even millions of rows at one instant split cleanly. Windows up to 250 k rows are ranked exactly
 * with a window function; larger ones are sampled (about 2 000 samples a shard, 20 k at least).
 */
export async function planShards(client: pg.Client, t: SourceTable, f: Filters, start: Bound, end: Bound, o: PlanOptions): Promise<ShardPlan> {
  const where = whereClause([...filterConditions(t, f), ...rangeConditions(t, start, end)]);
  const exactLimit = o.exactRowLimit ?? 250_000;
  // One scan counts the window (per partition) and samples it at a rate guessed from the
  // table's size; a second sampling pass runs only if that guess left too few samples.
  const tableRows = Number((await client.query<{ n: number }>(`SELECT reltuples::float8 AS n FROM pg_class WHERE oid = ${escapeLiteral(t.name)}::regclass`)).rows[0]?.n ?? 0);
  const firstRate = tableRows > 0 ? Math.min(1, (o.sampleRows ?? 20_000) / tableRows) : 0;
  // The sample's random() is seeded in this session, so the same rows plan the same shards:
  // plans, tests and benchmarks are reproducible. (random() is parallel restricted, so the
  // sampling runs in this backend alone and follows this seed.)
  await client.query(`SELECT setseed(${PLANNER_SEED})`);
  const partitions = await scanPartitions(client, t, where, o.granularity, firstRate);
  const totalRows = partitions.reduce((s, p) => s + p.rows, 0);
  if (totalRows === 0) return { totalRows, method: 'empty', shards: [] };

  const wanted = Math.max(Math.ceil(totalRows / o.rowsPerShard), o.workers * 2);
  const shardCount = Math.max(1, Math.min(wanted, Math.floor(totalRows / MIN_SHARD_ROWS)));
  const step = totalRows / shardCount;
  const ranks: number[] = [];
  for (let i = 1; i < shardCount; i++) ranks.push(Math.round(i * step));

  const exact = totalRows <= exactLimit;
  let quantiles: Cut[] = [];
  if (ranks.length > 0 && exact) quantiles = await exactBounds(client, t, where, ranks);
  else if (ranks.length > 0) {
    // ~2 000 samples a shard put each cut within about 2% of its ideal rank; more only costs time.
    const target = o.sampleRows ?? Math.min(200_000, Math.max(20_000, shardCount * 2000));
    let sample = partitions.flatMap((p) => p.sample);
    if (sample.length < target / 4) sample = await resample(client, t, where, Math.min(1, target / totalRows));
    quantiles = cutsFromSample(sample, ranks, totalRows);
  }

  // Forced cuts at partition edges after the window start, ranked by rows before them.
  const forced: Cut[] = [];
  let before = 0;
  for (const p of partitions) {
    if (p.start > start.ts) forced.push({ bound: { ts: p.start, key: null }, rank: before, forced: true });
    before += p.rows;
  }
  const cuts = mergeCuts(forced, quantiles, step);

  const bounds: Bound[] = [start, ...cuts.map((c) => c.bound), end];
  const rankAt = [0, ...cuts.map((c) => c.rank), totalRows];
  const shards: ShardSpec[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const lo = bounds[i]!;
    const hi = bounds[i + 1]!;
    if (boundEquals(lo, hi)) continue;
    shards.push({ index: shards.length, id: shardId(o.offsetKey, lo, hi), lo, hi, estimatedRows: Math.max(0, rankAt[i + 1]! - rankAt[i]!) });
  }
  return { totalRows, method: exact ? 'exact' : 'sample', shards };
}

/** Seed of the planner's sampling; any fixed value in [-1, 1] does. */
const PLANNER_SEED = 0.5;

interface PartitionScan { start: string; rows: number; sample: Bound[] }

/** "ts key" pairs aggregated in keyset order: the timestamp text has no space, so split at the first. */
function sampleAgg(t: SourceTable, rate: number): string {
  return rate > 0
    ? `array_agg(${TS_TEXT(t.ts)} || ' ' || ${t.key}::text ORDER BY ${t.ts}, ${t.keyOrdered}) FILTER (WHERE random() < ${rate})`
    : 'NULL::text[]';
}

function parseSample(values: string[] | null): Bound[] {
  return (values ?? []).map((v) => {
    const at = v.indexOf(' ');
    return { ts: v.slice(0, at), key: v.slice(at + 1) };
  });
}

async function scanPartitions(client: pg.Client, t: SourceTable, where: string, g: Granularity | null, rate: number): Promise<PartitionScan[]> {
  if (!g) {
    const r = await client.query<{ n: string; s: string[] | null }>(`SELECT count(*) AS n, ${sampleAgg(t, rate)} AS s FROM ${t.name} t ${where}`);
    return [{ start: '', rows: Number(r.rows[0]!.n), sample: parseSample(r.rows[0]!.s) }];
  }
  const r = await client.query<{ p: string; n: string; s: string[] | null }>(
    `SELECT ${TS_TEXT(`date_trunc(${escapeLiteral(g)}, ${t.ts})`)} AS p, count(*) AS n, ${sampleAgg(t, rate)} AS s FROM ${t.name} t ${where} GROUP BY 1 ORDER BY 1`,
  );
  return r.rows.map((row) => ({ start: row.p, rows: Number(row.n), sample: parseSample(row.s) }));
}

async function exactBounds(client: pg.Client, t: SourceTable, where: string, ranks: number[]): Promise<Cut[]> {
  const r = await client.query<{ ts: string; key: string; rn: string }>(
    `SELECT ${TS_TEXT('s.ts')} AS ts, s.key, s.rn FROM (
       SELECT ${t.ts} AS ts, ${t.key}::text AS key, row_number() OVER (${orderBy(t)}) - 1 AS rn FROM ${t.name} t ${where}
     ) s WHERE s.rn = ANY('{${ranks.join(',')}}'::int8[]) ORDER BY s.rn`,
  );
  return r.rows.map((row) => ({ bound: { ts: row.ts, key: row.key }, rank: Number(row.rn), forced: false }));
}

async function resample(client: pg.Client, t: SourceTable, where: string, rate: number): Promise<Bound[]> {
  const r = await client.query<{ s: string[] | null }>(`SELECT ${sampleAgg(t, rate)} AS s FROM ${t.name} t ${where}`);
  return parseSample(r.rows[0]!.s);
}

function cutsFromSample(sample: Bound[], ranks: number[], total: number): Cut[] {
  if (sample.length === 0) return [];
  const cuts: Cut[] = [];
  for (const rank of ranks) {
    const b = sample[Math.min(sample.length - 1, Math.floor((rank / total) * sample.length))]!;
    const last = cuts[cuts.length - 1];
    if (last && last.bound.ts === b.ts && last.bound.key === b.key) continue;
    cuts.push({ bound: b, rank, forced: false });
  }
  return cuts;
}

/**
 * Interleaves partition cuts with row-count cuts in keyset order. A row-count cut closer than a
 * quarter shard to a partition cut would only create a sliver shard, so it is dropped.
 */
function mergeCuts(forced: Cut[], quantiles: Cut[], step: number): Cut[] {
  const out: Cut[] = [];
  let q = 0;
  for (let fi = 0; fi <= forced.length; fi++) {
    const f = forced[fi];
    // A quantile at the same instant as a forced cut sorts after it (key null is before every key).
    while (q < quantiles.length && (!f || quantiles[q]!.bound.ts < f.bound.ts)) {
      const c = quantiles[q++]!;
      const prev = out[out.length - 1];
      const tooCloseBefore = prev?.forced && c.rank - prev.rank < step / 4;
      const tooCloseAfter = f && f.rank - c.rank < step / 4;
      if (!tooCloseBefore && !tooCloseAfter) out.push(c);
    }
    if (f) out.push(f);
  }
  return out;
}
