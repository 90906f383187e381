import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { waitFor } from './helpers/wait.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  for (const c of opened) await c.end().catch(() => {});
});

describe('gentle on the database it reads', () => {
  it('needs at most workers + 2 sessions (a role limited to that many runs window, late check and catch-up without refusal), names them logship:<offsetKey>:<role>, and reports the longest snapshot it held', async () => {
    const { client } = await freshDatabase('gentle');
    opened.push(client);
    await seedKestraLogs(client, { rows: 6000, start: isoAgo(3000), spanSeconds: 2400 });
    // PostgreSQL enforces the bound: a session past the role's limit is refused ("too many connections").
    const workers = 2;
    await client.query(`CREATE ROLE gentle LOGIN CONNECTION LIMIT ${workers + 2} PASSWORD 'pw'`);
    await client.query('GRANT SELECT ON logs TO gentle; GRANT CREATE ON SCHEMA public TO gentle');
    const { port, database } = (client as unknown as { connectionParameters: { port: number; database: string } }).connectionParameters;
    const dir = tempDir('gentle');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url: `postgres://gentle:pw@127.0.0.1:${port}/${database}?sslmode=disable`, fetchSize: 200 },
      offsetKey: 'nightly-archive', lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 500 }],
    });

    const first = startCli(['run', '--config', cfg, '--report', path.join(dir, 'first.json')], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
    const names = new Set<string>();
    await waitFor('a worker session', async () => {
      const r = await client.query<{ name: string }>("SELECT application_name AS name FROM pg_stat_activity WHERE usename = 'gentle'");
      for (const row of r.rows) names.add(row.name);
      return [...names].some((n) => n.endsWith(':worker')) || first.child.exitCode !== null;
    });
    const r1 = await first.done;
    expect(r1.code, r1.stderr).toBe(0);
    expect([...names].length).toBeGreaterThan(0);
    for (const n of names) expect(n).toMatch(/^logship:nightly-archive:[a-z-]+$/);

    // Late rows inside ranges already exported, and new rows: the second run checks, catches up and exports.
    await seedKestraLogs(client, { rows: 50, start: isoAgo(2000), spanSeconds: 60, seq: 500_000 });
    await seedKestraLogs(client, { rows: 500, start: isoAgo(300), spanSeconds: 200, seq: 600_000 });
    const r2 = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'second.json')]);
    expect(r2.code, r2.stderr).toBe(0);
    for (const r of [r1, r2]) expect(r.stderr).not.toMatch(/too many|capped|retrying/i);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));

    const second = JSON.parse(fs.readFileSync(path.join(dir, 'second.json'), 'utf8')) as { late: { rows: number }; oldestSnapshotMs: number; durationMs: number };
    expect(second.late.rows).toBeGreaterThanOrEqual(50); // the 50, and those of the 500 stamped before the first run ended
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'first.json'), 'utf8')) as { oldestSnapshotMs: number; durationMs: number };
    // 6000 rows at 20 ms a 200-row batch: every shard holds its snapshot for at least 100 ms.
    expect(report.oldestSnapshotMs).toBeGreaterThanOrEqual(100);
    expect(report.oldestSnapshotMs).toBeLessThanOrEqual(report.durationMs);
  });
});
