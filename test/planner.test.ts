import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { planShards, tableScanWarning } from '../src/plan/shards.js';
import { type ShardSpec } from '../src/core/keyset.js';
import { describeTable, type SourceTable } from '../src/source/table.js';
import { filterConditions, rangeConditions, whereClause } from '../src/source/query.js';
import { KESTRA_COLUMNS } from '../src/config/schema.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase } from './helpers/db.js';

let client: pg.Client;
let table: SourceTable;
const noFilters = { logLevelFilter: undefined, namespace: undefined, tenantId: undefined };
const start = { ts: '2026-01-01T00:00:00.000000Z', key: null };
const end = { ts: '2026-01-02T00:00:00.000000Z', key: null };

async function countIn(s: ShardSpec): Promise<number> {
  const r = await client.query(`SELECT count(*)::int AS n FROM logs t ${whereClause([...filterConditions(table, noFilters), ...rangeConditions(table, s.lo, s.hi)])}`);
  return r.rows[0].n;
}

async function actualCounts(shards: ShardSpec[]): Promise<number[]> {
  const counts: number[] = [];
  for (const s of shards) counts.push(await countIn(s)); // one client: one query at a time
  return counts;
}

beforeAll(async () => {
  ({ client } = await freshDatabase('planner'));
  // Skew: 90% of 20 000 rows in the first 10% of the day, the rest spread over the other 90%.
  await seedKestraLogs(client, { rows: 18_000, start: '2026-01-01T00:00:00Z', spanSeconds: 8640, tieGroup: 5 });
  await seedKestraLogs(client, { rows: 2_000, start: '2026-01-01T02:24:00Z', spanSeconds: 77_760, tieGroup: 1, seq: 100_000 });
  await client.query('ANALYZE logs'); // the planner's first guess comes from these statistics
  table = await describeTable(client, { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
});
afterAll(() => client.end());

describe('shard planner', () => {
  it('splits skewed data into shards of equal row counts (exact ranking)', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000 });
    expect(plan.method).toBe('exact');
    expect(plan.shards).toHaveLength(10);
    const counts = await actualCounts(plan.shards);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    const mean = 20_000 / plan.shards.length;
    expect(Math.max(...counts)).toBeLessThanOrEqual(2 * mean);
    expect(counts).toEqual(plan.shards.map((s) => s.estimatedRows));
  });

  it('keeps every shard under 2x the mean when it samples instead', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000, exactRowLimit: 0, sampleRows: 4000 });
    expect(plan.method).toBe('sample');
    const counts = await actualCounts(plan.shards);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(Math.max(...counts)).toBeLessThanOrEqual((2 * 20_000) / plan.shards.length);
  });

  it('plans the same sampled shards every time: the sampling is seeded', async () => {
    const options = { offsetKey: 'k', workers: 2, rowsPerShard: 2000, granularity: null, exactRowLimit: 0, sampleRows: 4000 };
    const first = await planShards(client, table, noFilters, start, end, options);
    // Another draw in between must not change the next plan.
    await client.query('SELECT random()');
    const second = await planShards(client, table, noFilters, start, end, options);
    expect(first.method).toBe('sample');
    expect(second.shards).toEqual(first.shards);
  });

  it('splits one instant shared by thousands of rows', async () => {
    const { client: c } = await freshDatabase('planner_ties');
    await seedKestraLogs(c, { rows: 8000, start: '2026-01-01T12:00:00Z', spanSeconds: 1, tieGroup: 8000 });
    const t = await describeTable(c, { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
    const plan = await planShards(c, t, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 1000 });
    expect(plan.shards).toHaveLength(8);
    expect(new Set(plan.shards.slice(1).map((s) => s.lo.ts))).toEqual(new Set(['2026-01-01T12:00:00.000000Z']));
    const counts: number[] = [];
    for (const s of plan.shards) {
      const r = await c.query(`SELECT count(*)::int AS n FROM logs t ${whereClause(rangeConditions(t, s.lo, s.hi))}`);
      counts.push(r.rows[0].n as number);
    }
    expect(counts).toEqual(Array(8).fill(1000));
    await c.end();
  });

  it('lets a shard span many event-time partitions on sparse data instead of one shard per partition', async () => {
    const { client: c } = await freshDatabase('planner_sparse');
    // 3 000 rows, one a day for about eight years: every row in its own hour.
    await seedKestraLogs(c, { rows: 3000, start: '2018-01-01T00:00:00Z', spanSeconds: 3000 * 86_400, tieGroup: 1 });
    const t = await describeTable(c, { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
    const plan = await planShards(c, t, noFilters, { ts: '2017-01-01T00:00:00.000000Z', key: null }, { ts: '2027-01-01T00:00:00.000000Z', key: null }, { offsetKey: 'k', workers: 2, rowsPerShard: 1_000_000 });
    expect(plan).toMatchObject({ method: 'exact', totalRows: 3000 });
    expect(plan.shards.map((s) => s.estimatedRows)).toEqual([1500, 1500]); // one a worker: partitions do not multiply shards
    await c.end();
  });

  it('plans a large window from a page sample, labels the count an estimate and tiles the window exactly', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000, exactRowLimit: 1000, sampleRows: 5000 });
    expect(plan.method).toBe('sample');
    expect(plan.totalRows).toBeGreaterThan(10_000);
    expect(plan.totalRows).toBeLessThan(40_000);
    // Whatever the estimate, consecutive shards share their bounds: no gap, no overlap.
    expect(plan.shards[0]!.lo).toEqual(start);
    expect(plan.shards.at(-1)!.hi).toEqual(end);
    for (let i = 1; i < plan.shards.length; i++) expect(plan.shards[i]!.lo).toEqual(plan.shards[i - 1]!.hi);
    const counts = await actualCounts(plan.shards);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(Math.max(...counts)).toBeLessThanOrEqual((2 * 20_000) / plan.shards.length);
  });

  it('plans the same shards twice from the same data (the sample is seeded)', async () => {
    const o = { offsetKey: 'k', workers: 2, rowsPerShard: 2000, exactRowLimit: 0, sampleRows: 4000 };
    const a = await planShards(client, table, noFilters, start, end, o);
    const b = await planShards(client, table, noFilters, start, end, o);
    expect(b).toEqual(a);
  });

  it('plans one worker\'s whole-table read as one shard from the planner\'s statistics, without a sample, and the shard holds every row', async () => {
    const o = { offsetKey: 'k', workers: 1, rowsPerShard: 2000, autoShardSize: true, exactRowLimit: 0 };
    const plan = await planShards(client, table, noFilters, start, end, o);
    expect(plan.reads).toBe('table-scan');
    expect(plan.method).toBe('statistics');
    expect(plan.shards).toHaveLength(1);
    expect(plan.shards[0]).toMatchObject({ lo: start, hi: end });
    // ANALYZE saw all 20 000 rows; the estimate comes from its histogram, not a count.
    expect(plan.totalRows).toBeGreaterThan(15_000);
    expect(plan.totalRows).toBeLessThan(25_000);
    expect(await actualCounts(plan.shards)).toEqual([20_000]);
    // Two workers need a cut, so they still sample.
    expect((await planShards(client, table, noFilters, start, end, { ...o, workers: 2 })).method).toBe('sample');
  });

  it('plans nothing for an empty window', async () => {
    const plan = await planShards(client, table, noFilters, { ts: '2020-01-01T00:00:00.000000Z', key: null }, { ts: '2020-01-02T00:00:00.000000Z', key: null }, { offsetKey: 'k', workers: 2, rowsPerShard: 1000 });
    expect(plan).toMatchObject({ totalRows: 0, method: 'empty', shards: [] });
  });

  it('plans one shard per worker when every shard would scan the whole table and rowsPerShard is the default, and by rowsPerShard once an index serves the range', async () => {
    const o = { offsetKey: 'k', workers: 2, rowsPerShard: 2000 };
    // Kestra's indexes lead with tenant_id: a range on the timestamp alone is a scan of the table.
    const scanned = await planShards(client, table, noFilters, start, end, { ...o, autoShardSize: true });
    expect(scanned.reads).toBe('table-scan');
    expect(scanned.shards).toHaveLength(2);
    expect((await actualCounts(scanned.shards)).reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(tableScanWarning(table, scanned, { ...o, autoShardSize: true }, 1000)).toBe(
      'source.table public.logs has no index PostgreSQL can use for a "timestamp" range: every shard\'s read scans the whole table, so logship plans one shard per worker (2 of ~10,000 rows) instead of one per rowsPerShard rows, and a rerun after a crash redoes whole shards; CREATE INDEX CONCURRENTLY ON public.logs ("timestamp") lets shards read only their range',
    );
    // rowsPerShard set by the user: kept, and the warning says what each shard costs.
    const asked = await planShards(client, table, noFilters, start, end, o);
    expect(asked.shards).toHaveLength(10);
    expect(tableScanWarning(table, scanned, { ...o, autoShardSize: true })).toBeNull(); // under a million rows a worker
    expect(tableScanWarning(table, asked, o, 1000)).toContain('so each of the 10 shards (rowsPerShard is set) scans all of it');

    await client.query('CREATE INDEX logs_ts_only ON logs ("timestamp")');
    await client.query('ANALYZE logs');
    try {
      const indexed = await planShards(client, table, noFilters, start, end, { ...o, autoShardSize: true });
      expect(indexed.reads).toBe('index');
      expect(indexed.shards).toHaveLength(10);
      expect(tableScanWarning(table, indexed, { ...o, autoShardSize: true }, 1000)).toBeNull();
    } finally {
      await client.query('DROP INDEX logs_ts_only');
    }
  });

  it('plans one shard per worker when an index serves a narrow range but PostgreSQL scans the whole table for shards of the planned size (rows out of time order)', async () => {
    // 100 000 rows over the day stored out of time order (as a purged, refilled table holds them),
    // with an index on the timestamp: a sliver of the day reads through it, half the rows do not.
    const { client: own } = await freshDatabase('planner_shuffled');
    try {
      await seedKestraLogs(own, { rows: 100_000, start: start.ts, spanSeconds: 86_000 });
      await own.query('CREATE TABLE logs_shuffled AS SELECT * FROM logs ORDER BY md5(key)');
      await own.query('CREATE INDEX ON logs_shuffled ("timestamp")');
      await own.query('ANALYZE logs_shuffled');
      const shuffled = await describeTable(own, { url: undefined, password: undefined, table: 'logs_shuffled', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
      const o = { offsetKey: 'k', workers: 1, rowsPerShard: 50_000, autoShardSize: true };
      const plan = await planShards(own, shuffled, noFilters, start, end, o);
      expect(plan).toMatchObject({ reads: 'table-scan', wideShards: true });
      expect(plan.shards).toHaveLength(1);
      // Nothing to create: no warning.
      expect(tableScanWarning(shuffled, plan, o, 1000)).toBeNull();
      // The premise, asked of PostgreSQL: half the day by a scan of the table, a minute by the index.
      const planOf = async (hi: string) => JSON.stringify((await own.query(`EXPLAIN (FORMAT JSON) SELECT * FROM logs_shuffled t WHERE "timestamp" >= '${start.ts}' AND "timestamp" < '${hi}'`)).rows[0]);
      expect(await planOf('2026-01-01T12:00:00Z')).toContain('"Seq Scan"');
      expect(await planOf('2026-01-01T00:01:00Z')).not.toContain('"Seq Scan"');
      // rowsPerShard set by the user: obeyed.
      expect((await planShards(own, shuffled, noFilters, start, end, { ...o, autoShardSize: false })).shards).toHaveLength(2);
    } finally {
      await own.end();
    }
  }, 60_000);
});
