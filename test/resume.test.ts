import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, normalize, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { killWhen } from './helpers/wait.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

const SLOW = { LOGSHIP_TEST_BATCH_DELAY_MS: '25' };

/** Starts a slowed run and SIGKILLs it once `cond` holds, i.e. at a known point mid-run. */
async function killSlowRunWhen(args: string[], what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  await killWhen(startCli(args, { env: SLOW }), what, cond);
}

async function unfinished(client: pg.Client): Promise<{ done: number; total: number } | null> {
  const r = await client.query(`SELECT run, (SELECT count(*)::int FROM logship_state_shards) AS done FROM logship_state`).catch(() => ({ rows: [] as { run: { shards: unknown[] } | null; done: number }[] }));
  const row = r.rows[0];
  return row?.run ? { done: row.done, total: row.run.shards.length } : null;
}

describe('kill -9 at any instant, then rerun: no duplicate, no missing row', () => {
  it('with the postgres state store, killed three times at different points', async () => {
    const { url, client } = await freshDatabase('kill_pg');
    opened.push(client);
    await seedKestraLogs(client, { rows: 24_000, start: isoAgo(3700), spanSeconds: 3600, tieGroup: 4 });
    const dir = tempDir('kill-pg');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 250 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 300 }],
    });
    const args = ['run', '--config', cfg];

    // 1: while the very first parts are being written (no shard finished yet).
    await killSlowRunWhen(args, 'a part being written', () => listTempFiles(out).length > 0);
    // 2: some shards finished, others mid-part.
    await killSlowRunWhen(args, '5 shards done', async () => ((await unfinished(client))?.done ?? 0) >= 5);
    expect(await unfinished(client)).not.toBeNull();
    // 3: much later in the same run.
    await killSlowRunWhen(args, '14 shards done', async () => ((await unfinished(client))?.done ?? 0) >= 14);
    const before = await unfinished(client);
    expect(before!.done).toBeGreaterThanOrEqual(14);
    expect(before!.done).toBeLessThan(before!.total);

    const final = await runCli(args);
    expect(final.code).toBe(0);
    expect(final.stdout).toMatch(/\(resumed\): \d+\/24 shards/);
    expect(listTempFiles(out)).toEqual([]);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    expect(await unfinished(client)).toBeNull();
  });

  it('with the file state store and JSON output', async () => {
    const { url, client } = await freshDatabase('kill_file');
    opened.push(client);
    await seedKestraLogs(client, { rows: 10_000, start: isoAgo(3700), spanSeconds: 3600 });
    const dir = tempDir('kill-file');
    const out = path.join(dir, 'out');
    const stateFile = path.join(dir, 'state', 'logship-state.json');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, state: { type: 'file', path: stateFile },
      logExporters: [{ id: 'files', type: 'file', directory: out, format: 'JSON', compression: 'zstd', maxLinesPerFile: 450 }],
    });
    await killSlowRunWhen(['run', '--config', cfg], '7 parts written', () => listParts(out).length >= 7);
    const st = JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout);
    expect(st.unfinishedRun).not.toBeNull();
    // The stale lock of the killed process does not block the rerun.
    const final = await runCli(['run', '--config', cfg]);
    expect(final.code).toBe(0);
    expect(exportedDocs(out)).toEqual((await sourceDocs(client)).map(normalize).sort());
  });
});

describe('delete: true', () => {
  it('deletes only rows that were written, while rows keep arriving in the exported range', async () => {
    const { url, client } = await freshDatabase('delete');
    opened.push(client);
    // An audit of every document ever inserted, kept apart from the table logship deletes from.
    await client.query(`CREATE TABLE inserted_docs (v jsonb NOT NULL);
      CREATE FUNCTION audit_insert() RETURNS trigger AS $$ BEGIN INSERT INTO inserted_docs VALUES (NEW.value); RETURN NEW; END $$ LANGUAGE plpgsql;
      CREATE TRIGGER logs_audit AFTER INSERT ON logs FOR EACH ROW EXECUTE FUNCTION audit_insert();`);
    await seedKestraLogs(client, { rows: 8000, start: isoAgo(3700), spanSeconds: 3600 });
    const dir = tempDir('delete');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, delete: true,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 500 }],
    });
    const { child, done } = startCli(['run', '--config', cfg], { env: SLOW });
    // Concurrent inserts spread over the whole exported hour (into finished, running and pending
    // shards): one round each time the run reports another finished shard, so the overlap follows
    // the run's progress rather than the clock.
    let seq = 1_000_000;
    let roundsMidRun = 0;
    let lastDone = -1;
    while (child.exitCode === null) {
      const progress = await unfinished(client);
      if (progress && progress.done < progress.total && progress.done > lastDone) {
        lastDone = progress.done;
        await seedKestraLogs(client, { rows: 40, start: isoAgo(3650), spanSeconds: 3500, tieGroup: 1, seq });
        seq += 40;
        roundsMidRun++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await done;
    expect(r.code).toBe(0);
    expect(roundsMidRun).toBeGreaterThanOrEqual(2); // the run really overlapped the inserts

    const exported = exportedDocs(out);
    const remaining = await sourceDocs(client);
    // Rows inserted after their shard's snapshot survive the delete.
    expect(remaining.length).toBeGreaterThan(0);
    expect(new Set(exported).size).toBe(exported.length);
    const remainingSet = new Set(remaining);
    expect(exported.filter((d) => remainingSet.has(d))).toEqual([]);
    // Nothing lost: every row ever inserted is in a file or still in the table, exactly once.
    const audit = (await client.query<{ v: string }>(`SELECT v::text AS v FROM inserted_docs`)).rows.map((x) => x.v).sort();
    expect(audit.length).toBe(8000 + (seq - 1_000_000));
    expect([...exported, ...remaining].sort()).toEqual(audit);
    const deleted = r.stdout.match(/deleted from source: ([\d,]+) rows/);
    expect(Number(deleted![1]!.replace(/,/g, ''))).toBe(exported.length);
  });

  it('a kill mid-run with delete loses nothing and duplicates nothing', async () => {
    const { url, client } = await freshDatabase('delete_kill');
    opened.push(client);
    await seedKestraLogs(client, { rows: 9000, start: isoAgo(3700), spanSeconds: 3600 });
    const source = await sourceDocs(client);
    const dir = tempDir('delete-kill');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, delete: true,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 400 }],
    });
    await killSlowRunWhen(['run', '--config', cfg], '3 shards done', async () => ((await unfinished(client))?.done ?? 0) >= 3);
    const midway = (await client.query(`SELECT count(*)::int AS n FROM logs`)).rows[0].n as number;
    expect(midway).toBeLessThan(9000);
    expect(midway).toBeGreaterThan(0);
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(exportedDocs(out)).toEqual(source);
    expect((await client.query(`SELECT count(*)::int AS n FROM logs`)).rows[0].n).toBe(0);
  });
});
