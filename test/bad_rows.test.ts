import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { freshDatabase } from './helpers/db.js';
import { exportedDocs, listParts, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

interface DeadLine { key: string | null; keyBase64?: string; timestamp: string; reason: string; raw: string | null }

function deadLetters(dir: string): DeadLine[] {
  return listParts(dir).filter((f) => path.basename(f).startsWith('bad-rows-'))
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as DeadLine))
    .sort((a, b) => (a.timestamp < b.timestamp ? -1 : 1));
}

/** A SQL_ASCII database (the only kind that can hold non-UTF-8 text) with a mapped `events` table. */
async function sqlAsciiDatabase(label: string): Promise<{ url: string; client: pg.Client }> {
  const { url: baseUrl, client: admin } = await freshDatabase(`${label}_admin`, false);
  opened.push(admin);
  const name = `t_${label}_${process.pid}`;
  await admin.query(`CREATE DATABASE ${name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
  const url = baseUrl.replace(/\/[^/]+$/, `/${name}`);
  const client = new pg.Client({ connectionString: url, client_encoding: 'SQL_ASCII' } as never);
  await client.connect();
  opened.push(client);
  await client.query("SET TimeZone = 'UTC'");
  await client.query(`CREATE TABLE events (id text PRIMARY KEY, ts timestamptz NOT NULL, msg text)`);
  return { url, client };
}

const eventColumns = { timestamp: 'ts', key: 'id', level: null, namespace: null, tenant: null, body: 'msg' };

describe('bad rows never block the pipeline', () => {
  it('dead-letters NULL, non-UTF-8 (body and key) and oversized rows, exports every other row, exits 3 and moves the offset', async () => {
    const { url, client } = await sqlAsciiDatabase('badrows');
    // 3000 rows; those at the planner's cut ranks (4 shards of 3003 rows: ranks 751, 1502, 2252)
    // have non-UTF-8 keys, so planning itself must get past them.
    await client.query(`INSERT INTO events SELECT CASE WHEN g IN (1, 752, 1503, 2253, 2500, 3000) THEN convert_from(('\\x6b6579ff' || encode(g::text::bytea, 'hex'))::bytea, 'SQL_ASCII') ELSE 'ok-' || lpad(g::text, 5, '0') END,
      now() - interval '10 minutes' + g * interval '1 ms', 'fine ' || g FROM generate_series(1, 3000) g`);
    await client.query(`INSERT INTO events VALUES ('null-body', now() - interval '9 minutes', NULL)`);
    await client.query(`INSERT INTO events VALUES ('bad-body', now() - interval '8 minutes', convert_from('\\x6869ff'::bytea, 'SQL_ASCII'))`);
    await client.query(`INSERT INTO events VALUES ('too-big', now() - interval '7 minutes', repeat('x', 5000))`);
    const dir = tempDir('badrows');
    const out = path.join(dir, 'out');
    const dead = path.join(dir, 'dead');
    const config = {
      source: { url, table: 'events', columns: eventColumns }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, maxRowBytes: '4KB',
      deadLetter: dead, state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out }],
    };
    const cfg = writeConfig(dir, config);
    const report = path.join(dir, 'report.json');
    const r = await runCli(['run', '--config', cfg, '--report', report]);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([
      `logship: 9 bad rows (NULL, not UTF-8 or over maxRowBytes) were dead-lettered to ${dead}; every other row was exported; set allowDeadLetter: true to accept that`,
    ]);
    expect(r.code).toBe(3);
    expect(JSON.parse(fs.readFileSync(report, 'utf8'))).toMatchObject({ status: 'ok', badRows: 9, rows: 2994 });

    const good = await client.query<{ v: string }>(`SELECT to_jsonb(msg)::text AS v FROM events WHERE id LIKE 'ok-%'`);
    expect(exportedDocs(out)).toEqual(good.rows.map((x) => x.v).sort());

    const lines = deadLetters(dead);
    const badKeys = lines.filter((l) => l.reason === 'key is not valid UTF-8');
    expect(badKeys).toHaveLength(6);
    expect(badKeys.map((l) => Buffer.from(l.keyBase64!, 'base64').subarray(0, 4).toString('hex'))).toEqual(Array(6).fill('6b6579ff'));
    const rest = lines.filter((l) => l.reason !== 'key is not valid UTF-8');
    expect(rest.map(({ key, reason, raw }) => ({ key, reason, raw }))).toEqual([
      { key: 'null-body', reason: 'body is NULL', raw: null },
      { key: 'bad-body', reason: 'body is not valid UTF-8', raw: Buffer.from('"hi\xff"', 'latin1').toString('base64') },
      { key: 'too-big', reason: 'body is 5002 bytes, over maxRowBytes (4000)', raw: Buffer.from(`"${'x'.repeat(5000)}"`).toString('base64') },
    ]);
    expect(rest.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(l.timestamp))).toBe(true);

    // The offset moved on: the next run finds nothing to export and nothing bad.
    const again = await runCli(['run', '--config', cfg]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('exported 0 rows');
    expect(deadLetters(dead)).toHaveLength(9);

    // allowDeadLetter: the same export exits 0.
    const cfg2 = writeConfig(dir, { ...config, allowDeadLetter: true, deadLetter: path.join(dir, 'dead2'), state: { type: 'file', path: path.join(dir, 'state2.json') }, logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out2') }] }, 'allow.yaml');
    const allowed = await runCli(['run', '--config', cfg2]);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('bad rows dead-lettered: 9');
    expect(exportedDocs(path.join(dir, 'out2'))).toEqual(exportedDocs(out));
  });

  it('holds each bad row exactly once in the dead letters after a kill -9 and a rerun', async () => {
    const { url, client } = await sqlAsciiDatabase('badkill');
    await client.query(`INSERT INTO events SELECT 'ok-' || lpad(g::text, 5, '0'), now() - interval '10 minutes' + g * interval '1 ms',
      CASE WHEN g % 500 = 7 THEN NULL ELSE 'fine ' || g END FROM generate_series(1, 6000) g`);
    const dir = tempDir('badkill');
    const out = path.join(dir, 'out');
    const dead = path.join(dir, 'dead');
    const cfg = writeConfig(dir, {
      source: { url, table: 'events', columns: eventColumns, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
      deadLetter: dead, allowDeadLetter: true, state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out, maxLinesPerFile: 200 }],
    });
    const { child, done } = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
    // Killed once some shards have committed their dead letters and a later one is mid-file.
    const until = Date.now() + 60_000;
    while (!(deadLetters(dead).length >= 4 && fs.readdirSync(dead).some((f) => f.endsWith('.tmp'))) && child.exitCode === null && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(child.exitCode).toBeNull();
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');

    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\(resumed\)/);
    const lines = deadLetters(dead);
    expect(lines.map((l) => l.key)).toEqual(Array.from({ length: 12 }, (_, i) => `ok-${String(i * 500 + 7).padStart(5, '0')}`));
    expect(fs.readdirSync(dead).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const good = await client.query<{ v: string }>(`SELECT to_jsonb(msg)::text AS v FROM events WHERE msg IS NOT NULL`);
    expect(exportedDocs(out)).toEqual(good.rows.map((x) => x.v).sort());
  });

  it('exports rows of 10 MB, rows full of control characters and json holding \\u0000 byte for byte', async () => {
    const { url, client } = await freshDatabase('ordinary_rows', false);
    opened.push(client);
    await client.query(`CREATE TABLE docs (id text PRIMARY KEY, ts timestamptz NOT NULL, body json, jb jsonb)`);
    // json as written: odd spacing, a newline between tokens, \\u0000 (which jsonb refuses).
    await client.query(`INSERT INTO docs (id, ts, body) VALUES
      ('nul', now() - interval '5 minutes', ('{"a" :  "x\\u0000y",' || E'\\n' || '"b":[1,  2]}')::json),
      ('ctl', now() - interval '4 minutes', json_build_object('c', (SELECT string_agg(chr(g), '') FROM generate_series(1, 31) g))),
      ('big', now() - interval '3 minutes', json_build_object('m', repeat('0123456789', 1048576)))`);
    await client.query(`INSERT INTO docs SELECT 'n' || g, now() - interval '6 minutes' + g * interval '1 ms', json_build_object('n', g) FROM generate_series(1, 100) g`);
    const dir = tempDir('ordinary');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url, table: 'docs', columns: { timestamp: 'ts', key: 'id', level: null, namespace: null, tenant: null, body: 'body' } },
      lookbackPeriod: 'P1D', workers: 1, state: { type: 'file', path: path.join(dir, 'state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: out, compression: 'none' }],
    });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.stderr).not.toMatch(/"level":(40|50)/);
    expect(r.code).toBe(0);
    const got = exportedDocs(out);
    expect(got).toHaveLength(103);
    expect(got).toContain('{"a" :  "x\\u0000y", "b":[1,  2]}');
    const big = got.find((d) => d.startsWith('{"m"'))!;
    expect(Buffer.byteLength(big)).toBeGreaterThan(10 * 1024 * 1024);
    const source = await client.query<{ v: string }>(`SELECT replace(body::text, E'\\n', ' ') AS v FROM docs`);
    expect(got).toEqual(source.rows.map((x) => x.v).sort());
    expect(got.find((d) => d.startsWith('{"c"'))).toBe(JSON.stringify({ c: String.fromCharCode(...Array.from({ length: 31 }, (_, i) => i + 1)) }).replace(/:/, ' : '));
  });
});
