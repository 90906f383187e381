import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { planShards } from '../src/plan/shards.js';
import { describeTable, type SourceTable } from '../src/source/table.js';
import { filterConditions, rangeConditions, whereClause, type Filters } from '../src/source/query.js';
import { KESTRA_COLUMNS } from '../src/config/schema.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import type { Bound } from '../src/core/keyset.js';
import { freshDatabase } from './helpers/db.js';

let client: pg.Client;
let table: SourceTable;
const day = (d: number, h = 0) => ({ ts: `2026-01-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:00:00.000000Z`, key: null });

/**
 * A Kestra table shaped like a user's: tenant `main` for most rows, NULL for the oldest, a second
 * tenant, stored out of time order (rewritten in md5(key) order), statistics gathered once.
 */
beforeAll(async () => {
  ({ client } = await freshDatabase('estimates'));
  await seedKestraLogs(client, { rows: 4_000, start: '2026-01-01T00:00:00Z', spanSeconds: 2 * 86_400, tieGroup: 1, tenantId: null });
  await seedKestraLogs(client, { rows: 24_000, start: '2026-01-03T00:00:00Z', spanSeconds: 8 * 86_400, tieGroup: 2, seq: 100_000 });
  await seedKestraLogs(client, { rows: 4_000, start: '2026-01-03T00:00:00Z', spanSeconds: 8 * 86_400, tieGroup: 1, seq: 200_000, tenantId: 'acme' });
  await client.query(`CREATE TEMP TABLE seeded AS SELECT key, value FROM logs; TRUNCATE logs;
    INSERT INTO logs (key, value) SELECT key, value FROM seeded ORDER BY md5(key); ANALYZE logs`);
  table = await describeTable(client, { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: false });
});
afterAll(() => client.end());

async function trueCount(f: Filters, start: Bound, end: Bound): Promise<number> {
  const r = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM logs t ${whereClause([...filterConditions(table, f), ...rangeConditions(table, start, end)])}`);
  return r.rows[0]!.n;
}

const none: Filters = { logLevelFilter: undefined, namespace: undefined, tenantId: undefined };
const filters: [string, Filters][] = [
  ['no filter', none],
  ['logLevelFilter INFO (Kestra\'s default)', { ...none, logLevelFilter: 'INFO' }],
  ['logLevelFilter WARN and a namespace with its children', { ...none, logLevelFilter: 'WARN', namespace: 'company.team' }],
  ['tenantId main', { ...none, tenantId: 'main' }],
  ['a namespace with its children', { ...none, namespace: 'company.team' }],
];
const windows: [string, Bound, Bound][] = [
  ['the whole history', day(1), day(12)],
  ['the last 3 days', day(8), day(12)],
  ['6 hours', day(10, 6), day(10, 12)],
];

describe('plan row counts are within ±20% of the true count', () => {
  // exactRowLimit 500: above it the plan samples (or, one worker reading by scans, takes the
  // statistics); the default 250 000: every window here is counted exactly.
  describe.each(windows)('window: %s', (_, start, end) => {
    it.each(filters.flatMap(([name, f]) => [1, 2].flatMap((workers) => [500, 250_000].map((cap) => [`${name}, ${workers} worker(s), exact-count cap ${cap}`, f, workers, cap] as const))))('%s', async (_, f, workers, cap) => {
      const truth = await trueCount(f, start, end);
      const plan = await planShards(client, table, f, start, end, { offsetKey: 'k', workers, rowsPerShard: 500_000, autoShardSize: true, exactRowLimit: cap });
      expect(truth).toBeGreaterThan(0);
      expect(Math.abs(plan.totalRows - truth) / truth, `${plan.method}: planned ${plan.totalRows}, true ${truth}`).toBeLessThanOrEqual(0.2);
      if (truth <= cap) expect(plan.totalRows).toBe(truth);
    });
  });
});

describe('the level filter', () => {
  it('compares Kestra\'s log_level enum by its labels, so the planner\'s estimate is close before any count', async () => {
    const f: Filters = { ...none, logLevelFilter: 'INFO' };
    const where = whereClause([...filterConditions({ ...table, pins: { tenant: false, namespace: false } }, f), ...rangeConditions(table, day(1), day(12))]);
    expect(where).toContain(`t."level" IN ('ERROR', 'WARN', 'INFO')`);
    const r = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM logs t ${where}`);
    const truth = await trueCount(f, day(1), day(12));
    expect(Math.abs(r.rows[0]!['QUERY PLAN'][0].Plan['Plan Rows'] - truth) / truth).toBeLessThanOrEqual(0.2);
  });
});
