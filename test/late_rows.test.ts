import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { committedAfter, committedAfterByAge, comparable, comparableByAge, parseSnapshot, stableXid } from '../src/source/snapshots.js';
import { freshDatabase, isoAgo, sourceDocs, connectTo } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { seeded } from './helpers/seeded.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const connect = (url: string): Promise<pg.Client> => connectTo(url, opened);

function lateParts(out: string): string[] {
  return listParts(out).filter((f) => /-late\d+-\d{5}\./.test(path.basename(f)));
}

/**
 * A fresh database holding `rows` Kestra rows over 40 minutes, ending ten minutes ago (inside the
 * default horizon), and an empty output directory: the first run exports them, later ones look for
 * the rows committed into their ranges afterwards.
 */
async function seededCase(name: string, rows: number): Promise<{ url: string; client: pg.Client; dir: string; out: string }> {
  const { url, client } = await freshDatabase(name);
  opened.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(3000), spanSeconds: 2400 });
  const dir = tempDir(name.replace(/_/g, '-'));
  return { url, client, dir, out: path.join(dir, 'out') };
}

describe('late-arriving rows are exported exactly once', () => {
  it('rows committed late at seeded random moments during and between incremental runs (safetyLag PT0S): 0 missing, 0 duplicated', async () => {
    const { url, client, dir, out } = await seededCase('late_random', 4000);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 500 }],
    });
    const random = seeded(12);
    const writer = await connect(url);
    let seq = 1_000_000;
    /** One transaction of late rows: timestamps somewhere in the last 45 minutes, i.e. mostly behind the offset. */
    const insertLate = async (c: pg.Client) => {
      const rows = 1 + Math.floor(random() * 40);
      await seedKestraLogs(c, { rows, start: isoAgo(60 + random() * 2700), spanSeconds: random() * 30, seq });
      seq += rows;
    };

    let lateSeen = 0;
    for (let round = 0; round < 4; round++) {
      // A transaction that is open while the run reads (in its snapshot's in-progress list) and
      // commits after the run: its rows must come out in a later run, once.
      const open = await connect(url);
      await open.query('BEGIN');
      await insertLate(open);
      const report = path.join(dir, `r${round}.json`);
      const run = startCli(['run', '--config', cfg, '--report', report], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '5' } });
      // Late rows committed at seeded random moments while the run goes.
      const moments = Array.from({ length: 6 }, () => Math.floor(random() * 1500)).sort((a, b) => a - b);
      let last = 0;
      for (const at of moments) {
        await sleep(at - last);
        last = at;
        await insertLate(writer);
      }
      const r = await run.done;
      expect(r.stderr).not.toMatch(/"level":(40|50)/);
      expect(r.code).toBe(0);
      await open.query('COMMIT');
      await open.end();
      opened.splice(opened.indexOf(open), 1);
      lateSeen += JSON.parse(fs.readFileSync(report, 'utf8')).late.rows;
      // Between runs: more late rows.
      await insertLate(writer);
      await insertLate(writer);
    }
    // A quiet run collects whatever the last round committed late.
    const final = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'final.json')]);
    expect(final.code).toBe(0);
    lateSeen += JSON.parse(fs.readFileSync(path.join(dir, 'final.json'), 'utf8')).late.rows;

    const exported = exportedDocs(out);
    const source = await sourceDocs(client);
    expect(exported.length).toBe(source.length);
    expect(exported).toEqual(source); // every row, none twice (the multisets are equal)
    expect(lateSeen).toBeGreaterThan(0);
    expect(lateParts(out).length).toBeGreaterThan(0);
    // Nothing is left behind: one more run finds no late row.
    const idle = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'idle.json')]);
    expect(idle.code, `${idle.signal} ${idle.stderr}`).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'idle.json'), 'utf8')).late.rows).toBe(0);
  }, 300_000); // several incremental runs, each a process: a bound on a hang, not on speed

  it('carries the check in the first window shard\'s own scan when every shard scans the whole table: new and late rows over several runs, keyed and scanned catch-ups, each row once', async () => {
    // Kestra's schema has no index serving a timestamp range: every shard's read scans the table.
    const { url, client, dir, out } = await seededCase('late_carried', 3000);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 200, ordered: true }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 400 }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const random = seeded(31);
    let seq = 1_000_000;
    const seed = async (c: pg.Client, rows: number, start: string, spanSeconds: number) => {
      await seedKestraLogs(c, { rows, start, spanSeconds, seq });
      seq += rows;
    };
    let late = 0;
    for (let round = 0; round < 3; round++) {
      await sleep(1100); // new rows stamped after the last run's window
      await seed(client, 200 + Math.floor(random() * 300), isoAgo(1), 0.5);
      // Late rows in the exported ranges, and a transaction the run's snapshot sees in progress.
      const lateNow = 20 + Math.floor(random() * 150);
      await seed(client, lateNow, isoAgo(2900 - random() * 600), 1500);
      late += lateNow;
      const open = await connect(url);
      await open.query('BEGIN');
      await seed(open, 30, isoAgo(2500), 300);
      const report = path.join(dir, `r${round}.json`);
      // Round 1: more late rows in a range than are looked up by key, so that range is scanned.
      const r = await runCli(['run', '--config', cfg, '--report', report], { env: round === 1 ? { LOGSHIP_TEST_MAX_KEYED_LATE_ROWS: '5' } : {} });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toMatch(/"level":(40|50)/);
      await open.query('COMMIT');
      await open.end();
      opened.splice(opened.indexOf(open), 1);
      expect(r.stderr.split('\n').filter((l) => l.includes('"session"')).map((l) => JSON.parse(l).session)).toEqual(['shard']);
      const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
      // This round's late rows, and the previous round's open transaction (committed after its run).
      expect(rep.late.rows).toBe(lateNow + (round > 0 ? 30 : 0));
      expect(rep.late.checkMs).toBe(0); // no scan of its own
      expect(rep.late.rangesChecked).toBeGreaterThan(0);
      expect(exportedDocs(out).length).toBe((await sourceDocs(client)).length - 30);
    }
    const final = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'final.json')]);
    expect(final.code).toBe(0);
    // The window is empty: the check runs on its own, and finds the last open transaction's rows.
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'final.json'), 'utf8')).late.rows).toBe(30);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    expect(late).toBeGreaterThan(0);
    expect(lateParts(out).length).toBeGreaterThan(0);
  }, 300_000);

  it('a kill -9 during the catch-up, then a rerun: each late row once, in deterministically named late parts', async () => {
    const { url, client, dir, out } = await seededCase('late_kill', 6000);
    const cfg = writeConfig(dir, {
      source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 150 }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    // Late rows in every exported range.
    await seedKestraLogs(client, { rows: 3000, start: isoAgo(2990), spanSeconds: 2380, seq: 1_000_000 });

    const lateRun = async () => {
      const r = await client.query<{ kind: string | null; done: number }>(
        `SELECT run->>'kind' AS kind, (SELECT count(*)::int FROM logship_state_shards) AS done FROM logship_state`);
      return r.rows[0]?.kind === 'late' ? r.rows[0].done : -1;
    };
    const { child, done } = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '40' } });
    const until = Date.now() + 120_000;
    // Killed mid-catch-up: some late shards done, a later one mid-part.
    while (!((await lateRun()) >= 2 && listTempFiles(out).length > 0) && child.exitCode === null && Date.now() < until) await sleep(10);
    expect(child.exitCode).toBeNull();
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    const partsBefore = lateParts(out).map((f) => path.basename(f));
    expect(partsBefore.length).toBeGreaterThan(0);

    const rerun = await runCli(['run', '--config', cfg]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(/late catch-up \S+ \(resumed\)/);
    expect(listTempFiles(out)).toEqual([]);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    // Parts finished before the kill keep their names (the same shard ids and part numbers).
    const after = new Set(lateParts(out).map((f) => path.basename(f)));
    expect(partsBefore.every((p) => after.has(p))).toBe(true);
  });

  it('works in a replica-style read: a read-only source session, file state', async () => {
    const { url, client, dir, out } = await seededCase('late_replica', 3000);
    // Every session logship opens is read-only, as on a hot standby: no xid, no write.
    const readOnly = `${url}?options=${encodeURIComponent('-c default_transaction_read_only=on')}`;
    const cfg = writeConfig(dir, {
      source: { url: readOnly }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000,
      state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    await seedKestraLogs(client, { rows: 500, start: isoAgo(2900), spanSeconds: 2000, seq: 1_000_000 });
    const second = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'r.json')]);
    expect(second.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).late.rows).toBe(500);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    expect(state.entries['LogShipper-state'].reads.some((r: { late: number }) => r.late === 1)).toBe(true);
    const shown = JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout);
    expect(shown.lateRows).toEqual({ horizon: 'PT1H', rangesTracked: state.entries['LogShipper-state'].reads.length });
  });

  it('idle runs extend the range before them instead of adding one each, and a row committed late into an idle window\'s span is still caught once', async () => {
    const { client, dir, out, url } = await seededCase('late_idle', 1000);
    const cfg = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1,
      state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    const reads = () => JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')).entries['LogShipper-state'].reads as { lo: { ts: string }; hi: { ts: string } }[];
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const afterFirst = reads();
    const idleFrom = afterFirst.at(-1)!.hi.ts;
    // Idle runs: nothing new, each one's window empty.
    for (let i = 0; i < 3; i++) {
      await sleep(20);
      expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    }
    const afterIdle = reads();
    expect(afterIdle).toHaveLength(afterFirst.length);
    expect(afterIdle.at(-1)!.hi.ts > idleFrom).toBe(true);
    // A row stamped inside the idle windows' span, committed only now: late for the extended range.
    const at = new Date((Date.parse(idleFrom) + Date.parse(afterIdle.at(-1)!.hi.ts)) / 2).toISOString();
    await seedKestraLogs(client, { rows: 1, start: at, spanSeconds: 0, seq: 2_000_000 });
    const caught = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'caught.json')]);
    expect(caught.code, caught.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'caught.json'), 'utf8')).late.rows).toBe(1);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    const again = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'again.json')]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'again.json'), 'utf8')).late.rows).toBe(0);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
  });

  it('checks for late rows on a session of its own beside the window, or after it on the main session when the role has none to spare: each late row once either way', async () => {
    const { url, client } = await freshDatabase('late_sessions');
    opened.push(client);
    const role = 'late_limited';
    await client.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2 PASSWORD 'pw'`);
    await client.query(`GRANT SELECT ON logs TO ${role}`);
    const limited = url.replace(/\/\/[^@]+@/, `//${role}:pw@`);
    await seedKestraLogs(client, { rows: 3000, start: isoAgo(3000), spanSeconds: 2400 });
    for (const [name, sourceUrl, session] of [['own', url, 'own'], ['limited', limited, 'main']] as const) {
      const dir = tempDir(`late-sessions-${name}`);
      const out = path.join(dir, 'out');
      const cfg = writeConfig(dir, {
        // One worker: with the main session it takes both of the limited role's sessions.
        source: { url: sourceUrl }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 1, rowsPerShard: 1000,
        offsetKey: `late-${name}`, state: { type: 'file', path: path.join(dir, 'state.json') },
        logExporters: [{ id: 'files', type: 'file', directory: out }],
      });
      expect((await runCli(['run', '--config', cfg])).code).toBe(0);
      // Late rows for the ranges of run 1.
      await seedKestraLogs(client, { rows: 400, start: isoAgo(2900), spanSeconds: 2000, seq: name === 'own' ? 1_000_000 : 2_000_000 });
      const second = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'r.json')]);
      expect(second.code).toBe(0);
      const logged = second.stderr.split('\n').filter((l) => l.includes('"session"')).map((l) => JSON.parse(l).session);
      expect(logged).toEqual([session]);
      const report = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8'));
      expect(report.late.rows).toBe(400);
      expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    }
  });

  it('with delete: true, late rows are exported, then deleted in the same snapshot (the scan path, not the key lookup)', async () => {
    const { url, client, dir, out } = await seededCase('late_delete', 3000);
    const all = new Set(await sourceDocs(client));
    const cfg = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000, delete: true,
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(await sourceDocs(client)).toEqual([]);
    await seedKestraLogs(client, { rows: 700, start: isoAgo(2900), spanSeconds: 2000, seq: 1_000_000 });
    for (const d of await sourceDocs(client)) all.add(d);
    // Too many late rows for a key lookup: each range with late rows is read by a scan in its own snapshot.
    const second = await runCli(['run', '--config', cfg, '--report', path.join(dir, 'r.json')], { env: { LOGSHIP_TEST_MAX_KEYED_LATE_ROWS: '0' } });
    expect(second.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8'));
    expect(report.late.rows).toBe(700);
    expect(report.deletedRows).toBe(700);
    expect(await sourceDocs(client)).toEqual([]);
    expect(exportedDocs(out)).toEqual([...all].sort());
  });
});

describe('late-row detection on 32-bit xmin values', () => {
  it('selects exactly the xids committed after the snapshot, across an xid wraparound', async () => {
    const { client } = await freshDatabase('late_xids', false);
    opened.push(client);
    const epoch = 3n * 2n ** 32n;
    const since = parseSnapshot(`${epoch + 4294967280n}:${epoch + 4294967290n}:${epoch + 4294967285n}`);
    const now = parseSnapshot(`${epoch + 2n ** 32n + 10n}:${epoch + 2n ** 32n + 12n}:`);
    expect(comparable(since, now)).toBe(true);
    const xids = [4294967270, 4294967280, 4294967285, 4294967289, 4294967290, 4294967295, 0, 1, 2, 3, 9, 11];
    const r = await client.query<{ x: string }>(
      `SELECT v.xmin::text AS x FROM (VALUES ${xids.map((x) => `('${x}'::xid)`).join(', ')}) v(xmin) WHERE ${committedAfter(since, now, 'v.xmin::text::int8')}`);
    // In progress at the snapshot (…285), assigned after it (…290 to 11 across the wrap); never
    // the frozen/bootstrap xids 0-2 or anything the snapshot saw committed.
    expect(r.rows.map((x) => Number(x.x))).toEqual([4294967285, 4294967290, 4294967295, 3, 9, 11]);
    expect(comparable(since, parseSnapshot(`1:${epoch + 2n ** 32n + 2n ** 31n}:`))).toBe(false);
  });

  it('selects the same xids by age() as by xmin, across an xid wraparound', async () => {
    const { client } = await freshDatabase('late_ages', false);
    opened.push(client);
    const epoch = 3n * 2n ** 32n;
    const since = parseSnapshot(`${epoch + 4294967280n}:${epoch + 4294967290n}:${epoch + 4294967285n}`);
    const now = parseSnapshot(`${epoch + 2n ** 32n + 10n}:${epoch + 2n ** 32n + 12n}:`);
    const stable = epoch + 2n ** 32n + 20n;
    expect(comparableByAge(since, stable)).toBe(true);
    // PostgreSQL's age() from that stable xid: int4 distance, 2^31 - 1 for the xids 0-2.
    const age = `(CASE WHEN v.xmin::text::int8 < 3 THEN 2147483647 ELSE (${stable % 2n ** 32n} - v.xmin::text::int8 + 4294967296) % 4294967296 END)`;
    const xids = [4294967270, 4294967280, 4294967285, 4294967289, 4294967290, 4294967295, 0, 1, 2, 3, 9, 11];
    const r = await client.query<{ x: string }>(
      `SELECT v.xmin::text AS x FROM (VALUES ${xids.map((x) => `('${x}'::xid)`).join(', ')}) v(xmin) WHERE ${committedAfterByAge(since, now, stable, age)}`);
    expect(r.rows.map((x) => Number(x.x))).toEqual([4294967285, 4294967290, 4294967295, 3, 9, 11]);
    expect(comparableByAge(since, since.xmin + 2n ** 31n - 1n)).toBe(false);
  });

  it('learns the xid age() measures from: a real row\'s age is its distance from it', async () => {
    const { client } = await freshDatabase('late_stable', false);
    opened.push(client);
    await client.query('CREATE TABLE t (v int)');
    await client.query('INSERT INTO t VALUES (1)');
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const now = parseSnapshot((await client.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s);
      const probe = now.xmax - 1n;
      const a = (await client.query<{ a: number }>('SELECT age($1::text::xid) AS a', [String(probe % 2n ** 32n)])).rows[0]!.a;
      const stable = stableXid(now, probe, a);
      // Other test files share the cluster's xids: the stable xid is at or a little past xmax.
      expect(stable >= now.xmax && stable - now.xmax < 10_000n).toBe(true);
      const row = (await client.query<{ x: string; a: number }>('SELECT xmin::text AS x, age(xmin) AS a FROM t')).rows[0]!;
      expect(BigInt(row.a)).toBe(stable % 2n ** 32n - BigInt(row.x));
    } finally {
      await client.query('COMMIT');
    }
  });
});
