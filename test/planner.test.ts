import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { planShards, type ShardSpec } from '../src/plan/shards.js';
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
  table = await describeTable(client, { url: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
});
afterAll(() => client.end());

describe('shard planner', () => {
  it('splits skewed data into shards of equal row counts (exact ranking)', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000, granularity: null });
    expect(plan.method).toBe('exact');
    expect(plan.shards).toHaveLength(10);
    const counts = await actualCounts(plan.shards);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    const mean = 20_000 / plan.shards.length;
    expect(Math.max(...counts)).toBeLessThanOrEqual(2 * mean);
    expect(counts).toEqual(plan.shards.map((s) => s.estimatedRows));
  });

  it('keeps every shard under 2x the mean when it samples instead', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000, granularity: null, exactRowLimit: 0, sampleRows: 4000 });
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
    const t = await describeTable(c, { url: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
    const plan = await planShards(c, t, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 1000, granularity: null });
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

  it('cuts shards at hour edges when names are partitioned by hour', async () => {
    const plan = await planShards(client, table, noFilters, start, end, { offsetKey: 'k', workers: 2, rowsPerShard: 2000, granularity: 'hour' });
    for (const s of plan.shards) {
      const r = await client.query(`SELECT count(DISTINCT date_trunc('hour', "timestamp"))::int AS hours FROM logs t ${whereClause(rangeConditions(table, s.lo, s.hi))}`);
      expect(r.rows[0].hours).toBeLessThanOrEqual(1);
    }
    expect((await actualCounts(plan.shards)).reduce((a, b) => a + b, 0)).toBe(20_000);
  });

  it('plans nothing for an empty window', async () => {
    const plan = await planShards(client, table, noFilters, { ts: '2020-01-01T00:00:00.000000Z', key: null }, { ts: '2020-01-02T00:00:00.000000Z', key: null }, { offsetKey: 'k', workers: 2, rowsPerShard: 1000, granularity: null });
    expect(plan).toEqual({ totalRows: 0, method: 'empty', shards: [] });
  });
});
