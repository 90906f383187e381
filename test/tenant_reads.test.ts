import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { KESTRA_COLUMNS } from '../src/config/schema.js';
import type { Config } from '../src/shard/config.js';
import { cappedCountSql } from '../src/plan/shards.js';
import { checkBasis } from '../src/shard/late_check.js';
import { currentSnapshot, lateRowsSql } from '../src/run/late_rows.js';
import { namespacePin, tenantPin } from '../src/source/pins.js';
import { filterConditions, rangeConditions, shardDelete, shardSelect, whereClause, type Filters } from '../src/source/query.js';
import { describeTable, type SourceTable } from '../src/source/table.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, runCli, tempDir, writeConfig } from './helpers/cli.js';
import { waitFor } from './helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

const SOURCE = { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy' as const, fetchSize: 1000, ordered: false };
const noFilters: Filters = { logLevelFilter: undefined, namespace: undefined, tenantId: undefined };
const NAMESPACE_ROWS = "(namespace = 'company.team' OR namespace LIKE 'company.team.%')";

/** Seeds Kestra rows with distinct keys across calls. */
function seeder(client: pg.Client) {
  let seq = 0;
  return async (tenantId: string | null, rows: number, start: string, spanSeconds: number): Promise<void> => {
    await seedKestraLogs(client, { rows, start, spanSeconds, seq, tenantId });
    seq += rows;
  };
}

/**
 * Rewrites the table in an order unrelated to time (seeded by the key's hash). Before the first
 * run only: rewritten rows are new rows to the late-row check, exported again like any UPDATE.
 */
async function shuffle(client: pg.Client): Promise<void> {
  await client.query(`CREATE TEMP TABLE logship_shuffle AS SELECT key, value FROM logs;
    TRUNCATE logs; INSERT INTO logs (key, value) SELECT key, value FROM logship_shuffle ORDER BY md5(key || 'shuffle');
    DROP TABLE logship_shuffle; ANALYZE logs`);
}

interface Scenario {
  name: string;
  tenants: (string | null)[];
  config?: Record<string, unknown>;
  /** The source rows the export must hold: SQL on logs. */
  where?: string;
  shuffled?: boolean;
  /** A tenant first seen after the first run: new rows in the second window and late rows in the first run's ranges. */
  newcomer?: boolean;
}

const scenarios: Scenario[] = [
  { name: 'tenant main only', tenants: ['main'] },
  { name: 'NULL tenant only (rows written before Kestra 0.23)', tenants: [null] },
  { name: 'several tenants, NULL included, and a tenant first seen between the runs (late rows too)', tenants: ['main', null, 'acme', 'zeta'], newcomer: true },
  { name: 'tenantId configured', tenants: ['main', null, 'acme'], config: { tenantId: 'acme' }, where: "tenant_id = 'acme'" },
  { name: 'namespace with children, every tenant', tenants: ['main', null, 'acme'], config: { namespace: 'company.team' }, where: NAMESPACE_ROWS, newcomer: true },
  { name: 'namespace with children and tenantId', tenants: ['main', 'acme'], config: { namespace: 'company.team', tenantId: 'main' }, where: `tenant_id = 'main' AND ${NAMESPACE_ROWS}` },
  { name: 'a table stored out of time order', tenants: ['main', null, 'acme'], shuffled: true, newcomer: true },
];

describe('reads pinned to the tenants present (Kestra indexes lead with tenant_id): every row exactly once', () => {
  it.each(scenarios)('$name: two incremental runs', async (s) => {
    const label = `tenant_${scenarios.indexOf(s)}`;
    const { url, client } = await freshDatabase(label);
    opened.push(client);
    const seed = seeder(client);
    for (const [i, tenant] of s.tenants.entries()) await seed(tenant, 600 + 150 * i, isoAgo(3000), 2400);
    if (s.shuffled) await shuffle(client);
    const dir = tempDir(label.replace(/_/g, '-'));
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000, ...s.config,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 400 }],
    });
    const first = await runCli(['run', '--config', cfg]);
    expect(first.code).toBe(0);
    expect(first.stderr).not.toContain('CREATE INDEX');

    await sleep(1100); // new rows stamped after the first window
    for (const tenant of s.tenants) await seed(tenant, 120, isoAgo(1), 0.5);
    if (s.newcomer) {
      await seed('newco', 90, isoAgo(1), 0.5);
      // Committed after the first run read their range: found by the late-row check.
      await seed('newco', 40, isoAgo(2500), 600);
    }
    const report = path.join(dir, 'second.json');
    const second = await runCli(['run', '--config', cfg, '--report', report]);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toMatch(/"level":(40|50)/);
    if (s.newcomer) {
      const late = await client.query(`SELECT count(*)::int AS n FROM logs WHERE tenant_id = 'newco' AND "timestamp" < now() - interval '100 seconds' AND ${s.where ?? 'true'}`);
      expect(JSON.parse(fs.readFileSync(report, 'utf8')).late.rows).toBe(late.rows[0].n);
    }

    const expected = await sourceDocs(client, s.where);
    expect(expected.length).toBeGreaterThan(100);
    expect(exportedDocs(out)).toEqual(expected); // each row once: the multisets are equal
  }, 180_000);
});

describe('the loose index scan', () => {
  it('finds the NULL and non-NULL tenants and the namespaces under a prefix, and the pins keep every row', async () => {
    const { client } = await freshDatabase('tenant_loose');
    opened.push(client);
    const seed = seeder(client);
    for (const tenant of ['b', null, 'a', 'main']) await seed(tenant, 300, '2025-01-01T00:00:00Z', 3600);
    const t = await describeTable(client, SOURCE);
    expect(t.pins).toEqual({ tenant: true, namespace: true });
    const pin = tenantPin(t);
    const array = /= ANY\((ARRAY\(.*\))\) OR/.exec(pin)![1]!;
    expect((await client.query(`SELECT ${array}::text[] AS v`)).rows[0].v).toEqual(['a', 'b', 'main']);
    // NULL tenants are read by the pin's IS NULL arm: every row passes it.
    expect((await client.query(`SELECT count(*)::int AS n FROM logs t WHERE ${pin}`)).rows[0].n).toBe(1200);
    const matches = (v: string) => `(${v} = 'company.team' OR ${v} LIKE 'company.team.%')`;
    for (const tenantId of [undefined, 'a']) {
      const ns = namespacePin(t, tenantId, matches);
      const list = /= ANY\((.*)\)$/.exec(ns)![1]!;
      expect((await client.query(`SELECT array(SELECT unnest(${list}) ORDER BY 1)::text[] AS v`)).rows[0].v).toEqual(['company.team', 'company.team.backend', 'company.team.data.etl']);
    }
    // A table with an index on the timestamp keeps plain ranges (the planner-cost reasoning of shardReads).
    await client.query('CREATE INDEX logs_ts ON logs ("timestamp")');
    expect((await describeTable(client, SOURCE)).pins).toEqual({ tenant: false, namespace: false });
  });
});

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; 'Index Cond'?: string; Plans?: PlanNode[]; 'Shared Hit Blocks'?: number; 'Shared Read Blocks'?: number }

function nodes(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(nodes)];
}

/**
 * ~200k Kestra rows over two days ending 20 minutes ago (96% tenant main, 2% acme, 2% NULL), the
 * last 10 minutes holding ~1000 rows more. Autovacuum is off so only logship touches its pages.
 */
describe('on a 200k-row table, a small window reads pages in proportion to the window, not the table', () => {
  let url: string;
  let client: pg.Client;
  let table: SourceTable;
  let tablePages: number;
  let seed: ReturnType<typeof seeder>;
  const lo = { ts: '', key: null };
  const hi = { ts: '', key: null };

  beforeAll(async () => {
    ({ url, client } = await freshDatabase('tenant_pages'));
    opened.push(client);
    seed = seeder(client);
    await client.query('ALTER TABLE logs SET (autovacuum_enabled = false)');
    await seed('main', 192_000, isoAgo(2 * 86400 + 1200), 2 * 86400);
    await seed('acme', 4000, isoAgo(2 * 86400 + 1200), 2 * 86400);
    await seed(null, 4000, isoAgo(2 * 86400 + 1200), 2 * 86400);
    for (const tenant of ['main', 'acme', null]) await seed(tenant, 350, isoAgo(540), 400);
    await client.query('VACUUM ANALYZE logs');
    table = await describeTable(client, SOURCE);
    tablePages = (await client.query<{ n: number }>("SELECT (pg_relation_size('logs') / 8192)::int AS n")).rows[0]!.n;
    // A 10-minute slice of the old rows: ~700 rows.
    const edges = (await client.query<{ lo: string; hi: string }>(`SELECT to_char((now() - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS lo,
      to_char((now() - interval '1 day' + interval '10 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS hi`)).rows[0]!;
    lo.ts = edges.lo;
    hi.ts = edges.hi;
  }, 180_000);

  /** EXPLAIN (ANALYZE, BUFFERS) of `sql` (in a transaction rolled back: DELETEs too). */
  async function explain(sql: string): Promise<{ blocks: number; scans: PlanNode[] }> {
    await client.query('BEGIN');
    try {
      const r = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`);
      const plan = r.rows[0]!['QUERY PLAN'][0].Plan;
      const all = nodes(plan);
      return { blocks: (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0), scans: all.filter((n) => /Scan/.test(n['Node Type'])) };
    } finally {
      await client.query('ROLLBACK');
    }
  }

  const cases: [string, Filters][] = [
    ['no filter', noFilters],
    ['tenantId', { ...noFilters, tenantId: 'acme' }],
    ['namespace', { ...noFilters, namespace: 'company.team' }],
    ['namespace and tenantId', { ...noFilters, namespace: 'company.team', tenantId: 'main' }],
  ];

  it.each(cases)('window count, shard reads (COPY, cursor, ordered), delete and late check: index ranges only (%s)', async (_, f) => {
    const where = whereClause([...filterConditions(table, f), ...rangeConditions(table, lo, hi)]);
    // The range was "read" before one more transaction committed, so the check's age test is a real one.
    const since = await currentSnapshot(client);
    await client.query('BEGIN; SELECT pg_current_xact_id(); COMMIT');
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const until = await currentSnapshot(client);
    const { now, stable } = await checkBasis(client, until, []);
    await client.query('COMMIT');
    const config = { ...f, resources: undefined } as unknown as Config;
    const queries: Record<string, string> = {
      count: cappedCountSql(table, where, 250_000),
      copy: shardSelect(table, f, lo, hi, { ordered: false, mode: 'copy' }),
      cursor: shardSelect(table, f, lo, hi, { ordered: false, mode: 'cursor' }),
      ordered: shardSelect(table, f, lo, hi, { ordered: true, mode: 'copy' }),
      delete: shardDelete(table, f, lo, hi),
      late: lateRowsSql(table, config, [{ id: 'r', lo, hi, snapshot: since, late: 0 }], now, stable).sql,
    };
    const touched: Record<string, number> = {};
    for (const [name, sql] of Object.entries(queries)) {
      const { blocks, scans } = await explain(sql);
      touched[name] = blocks;
      const onLogs = scans.filter((n) => n['Relation Name'] === 'logs' || n['Index Name']?.startsWith('logs_'));
      expect(onLogs.filter((n) => n['Node Type'] === 'Seq Scan'), name).toEqual([]);
      // An index scan without an index condition walks the whole index.
      expect(onLogs.filter((n) => n['Index Name'] && !n['Index Cond']).map((n) => n['Index Name']), name).toEqual([]);
      // Far below the table (an index scan's DELETE counts a buffer access per row: ~1 per window row).
      expect(blocks, name).toBeLessThan(tablePages / 10);
    }
    // Before: the same window without the pins walks a whole index or scans the table.
    const unpinned = { ...table, pins: { tenant: false, namespace: false } };
    const before = await explain(cappedCountSql(unpinned, whereClause([...filterConditions(unpinned, f), ...rangeConditions(unpinned, lo, hi)]), 250_000));
    console.log(`${_}: blocks touched ${JSON.stringify(touched)}; the count without pins: ${before.blocks}; heap pages ${tablePages}`);
    if (f.tenantId === undefined) expect(before.blocks).toBeGreaterThan(5 * touched.count!);
  });

  it('an incremental run (plan, count, shard COPY, late check) touches far fewer pages than the table holds, and exports each row once', async () => {
    const dir = tempDir('tenant-pages');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 500 }, lookbackPeriod: 'PT10M', safetyLag: 'PT0S', workers: 2,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 1000 }],
    });
    const first = path.join(dir, 'first.json');
    expect((await runCli(['run', '--config', cfg, '--report', first])).code).toBe(0);
    const start: string = JSON.parse(fs.readFileSync(first, 'utf8')).runs[0].window.start.ts;

    await sleep(1100);
    for (const tenant of ['main', 'acme', null, 'newco']) await seed(tenant, 250, isoAgo(1), 0.5);
    await seed('newco', 50, isoAgo(300), 200); // late: inside the first run's range
    // Our own pending statistics first; then the counters the run moves.
    await client.query('SELECT pg_stat_force_next_flush()');
    const blocks = async () => {
      await client.query('SELECT pg_stat_clear_snapshot()');
      const r = await client.query<{ n: string }>(`SELECT heap_blks_read + heap_blks_hit + idx_blks_read + idx_blks_hit + coalesce(toast_blks_read + toast_blks_hit, 0) AS n FROM pg_statio_user_tables WHERE relname = 'logs'`);
      return Number(r.rows[0]!.n);
    };
    const before = await blocks();
    const report = path.join(dir, 'second.json');
    const second = await runCli(['run', '--config', cfg, '--report', report]);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toContain('CREATE INDEX');
    // A backend flushes its statistics before it leaves pg_stat_activity.
    await waitFor('the run\'s sessions to end', async () => (await client.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)).rows[0].n === 0);
    const touched = (await blocks()) - before;
    const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
    expect(rep.rows).toBe(1000 + 50);
    expect(rep.late.rows).toBe(50);
    console.log(`incremental run: ${touched} blocks of logs (heap + indexes) touched; the heap alone has ${tablePages} pages`);
    expect(touched).toBeLessThan(tablePages / 10);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client, `"timestamp" >= '${start}'::timestamptz`));
  }, 180_000);
});
