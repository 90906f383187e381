import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, normalize, runCli, tempDir, writeConfig } from './helpers/cli.js';

const FLOWS = path.resolve(__dirname, '../fixtures/kestra-flows');

interface Setup { url: string; client: pg.Client; dir: string; out: string }
const opened: pg.Client[] = [];

async function setup(label: string, rows: number, spanSeconds = 3600): Promise<Setup> {
  const { url, client } = await freshDatabase(label);
  opened.push(client);
  if (rows > 0) await seedKestraLogs(client, { rows, start: isoAgo(spanSeconds + 120), spanSeconds });
  const dir = tempDir(label);
  return { url, client, dir, out: path.join(dir, 'out') };
}

function fileConfig(s: Setup, extra: Record<string, unknown> = {}, exporter: Record<string, unknown> = {}) {
  return {
    source: { url: s.url },
    lookbackPeriod: 'P1D',
    workers: 2,
    rowsPerShard: 1000,
    ...extra,
    logExporters: [{ id: 'files', type: 'file', directory: s.out, maxLinesPerFile: 700, ...exporter }],
  };
}

afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

describe('logship run (files)', () => {
  it('exports every row exactly once, in rotated, atomically named files', async () => {
    const s = await setup('once', 6000);
    const cfg = writeConfig(s.dir, fileConfig(s));
    const r = await runCli(['run', '--config', cfg, '--report', path.join(s.dir, 'report.json')]);
    expect(r.stderr).not.toMatch(/"level":(40|50)/);
    expect(r.code).toBe(0);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
    const parts = listParts(s.out);
    expect(parts.every((f) => /kestra-log-file-\d{8}T\d{6}Z-[0-9a-f]{8}-\d{5}\.ndjson\.gz$/.test(f))).toBe(true);
    expect(listTempFiles(s.out)).toEqual([]);
    const report = JSON.parse(fs.readFileSync(path.join(s.dir, 'report.json'), 'utf8'));
    expect(report).toMatchObject({ status: 'ok', rows: 6000, files: parts.length, offsetBefore: null });
    expect(report.exporters.files.rows).toBe(6000);
    expect(r.stdout).toContain('logship: exported 6,000 rows');
    // The stored offset is the window end.
    const st = await runCli(['state', '--config', cfg, '--json']);
    expect(JSON.parse(st.stdout)).toMatchObject({ offset: report.offsetAfter, unfinishedRun: null });
  });

  it('exports only new rows on the next run, and none twice', async () => {
    const s = await setup('incremental', 3000);
    const cfg = writeConfig(s.dir, fileConfig(s, { safetyLag: 'PT1S' }));
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    // Newer than the stored offset (the first run's now - 1 s), then out of the lag by the next run.
    await seedKestraLogs(s.client, { rows: 2500, start: isoAgo(0.5), spanSeconds: 0.2, seq: 1_000_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const second = await runCli(['run', '--config', cfg]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('exported 2,500 rows');
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
  });

  it('splits thousands of rows sharing one timestamp across shards without losing or repeating any', async () => {
    const s = await setup('ties', 0);
    await seedKestraLogs(s.client, { rows: 6000, start: isoAgo(600), spanSeconds: 1, tieGroup: 6000 });
    const cfg = writeConfig(s.dir, fileConfig(s));
    const r = await runCli(['run', '--config', cfg, '--report', path.join(s.dir, 'r.json')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(s.dir, 'r.json'), 'utf8')).runs[0].shards).toBe(6);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
  });

  it('exports rows spread over years under an hourly template in a few shards, one file per hour', async () => {
    const s = await setup('sparse', 0);
    // 500 rows, one every 2 days: each row is alone in its hour, far more hours than a shard keeps parts open.
    await seedKestraLogs(s.client, { rows: 500, start: isoAgo(500 * 2 * 86_400 + 600), spanSeconds: 500 * 2 * 86_400, tieGroup: 1 });
    const cfg = writeConfig(s.dir, fileConfig(s, { lookbackPeriod: 'P3650D', rowsPerShard: 1_000_000 }, { keyTemplate: '{prefix}/dt={date}/hour={hour}/{prefix}-{shard}-{part}.{ext}' }));
    const r = await runCli(['run', '--config', cfg, '--report', path.join(s.dir, 'r.json')]);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(s.dir, 'r.json'), 'utf8'));
    expect(report.runs[0].shards).toBe(1); // 500 rows: fewer than two shards of the 1 000-row minimum
    expect(report.files).toBe(500);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
    for (const f of listParts(s.out)) {
      const [, date, hour] = /dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\//.exec(f)!;
      for (const line of exportedDocs(path.dirname(f))) expect(JSON.parse(line).timestamp.slice(0, 13)).toBe(`${date}T${hour}`);
    }
  });

  it('leaves rows inside the safety lag for the next run', async () => {
    // Margins of an hour, not seconds, so a slow machine cannot move a row across the lag; the
    // second run's shorter lag stands in for the time that passes before the next run.
    const s = await setup('lag', 0);
    await seedKestraLogs(s.client, { rows: 1000, start: isoAgo(3 * 3600), spanSeconds: 3600 });
    await s.client.query(`INSERT INTO logs (key, value) SELECT 'late' || g, jsonb_build_object('namespace','n','flowId','f','level','INFO','message','late ' || g,
      'timestamp', to_char(now() - interval '10 minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) FROM generate_series(1, 5) g`);
    const cfg = writeConfig(s.dir, fileConfig(s, { safetyLag: 'PT1H' }));
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client, "key NOT LIKE 'late%'"));
    writeConfig(s.dir, fileConfig(s, { safetyLag: 'PT1M' }));
    const second = await runCli(['run', '--config', cfg]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('exported 5 rows');
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
  });

  it('applies the namespace (with children) and minimum level filters', async () => {
    const s = await setup('filters', 6000);
    const cfg = writeConfig(s.dir, fileConfig(s, { namespace: 'company.team', logLevelFilter: 'WARN' }));
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const expected = await sourceDocs(s.client, `(namespace = 'company.team' OR namespace LIKE 'company.team.%') AND level IN ('WARN', 'ERROR')`);
    expect(expected.length).toBeGreaterThan(300);
    const got = exportedDocs(s.out);
    expect(got).toEqual(expected);
    expect(got.some((d) => d.includes('"company.teamx"') || d.includes('"company_team"') || d.includes('"INFO"'))).toBe(false);
  });

  it('skips soft-deleted rows when the table has a deleted column', async () => {
    const s = await setup('softdelete', 2000);
    await s.client.query(`ALTER TABLE logs ADD COLUMN deleted boolean GENERATED ALWAYS AS (coalesce((value ->> 'deleted')::boolean, false)) STORED`);
    await s.client.query(`UPDATE logs SET value = value || '{"deleted": true}' WHERE key IN (SELECT key FROM logs ORDER BY key LIMIT 300)`);
    const cfg = writeConfig(s.dir, fileConfig(s));
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client, 'NOT deleted'));
  });

  it('fans one read out to two exporters with different formats and compressions', async () => {
    const s = await setup('fanout', 4000);
    const cfg = writeConfig(s.dir, {
      ...fileConfig(s),
      logExporters: [
        { id: 'ndjson', type: 'file', directory: path.join(s.dir, 'a'), compression: 'gzip' },
        { id: 'json', type: 'file', directory: path.join(s.dir, 'b'), format: 'JSON', compression: 'zstd', maxLinesPerFile: 900 },
      ],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const source = await sourceDocs(s.client);
    expect(exportedDocs(path.join(s.dir, 'a'))).toEqual(source);
    expect(exportedDocs(path.join(s.dir, 'b'))).toEqual(source.map(normalize).sort());
    expect(listParts(path.join(s.dir, 'b')).every((f) => f.endsWith('.json.zst'))).toBe(true);
  });

  it('gives the same files through the cursor path', async () => {
    const s = await setup('cursor', 3000);
    const cfg = writeConfig(s.dir, fileConfig(s, { source: { url: s.url, stream: 'cursor', fetchSize: 333 } }));
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(exportedDocs(s.out)).toEqual(await sourceDocs(s.client));
  });

  it('exports a mapped, non-Kestra table', async () => {
    const s = await setup('mapped', 0);
    await s.client.query(`CREATE TABLE app_events (id bigserial PRIMARY KEY, ts timestamp NOT NULL, severity text, service text, payload json)`);
    await s.client.query(`INSERT INTO app_events (ts, severity, service, payload)
      SELECT now() - interval '1 hour' + g * interval '1 ms', (ARRAY['info','warn','error'])[1 + g % 3], 'svc' || g % 4, json_build_object('n', g, 'text', E'line\\nbreak')
      FROM generate_series(1, 3000) g`);
    const cfg = writeConfig(s.dir, fileConfig(s, {
      source: { url: s.url, table: 'app_events', columns: { timestamp: 'ts', key: 'id', level: 'severity', namespace: null, tenant: null, body: 'payload' } },
      logLevelFilter: 'WARN',
    }));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(0);
    // json goes out as written (json_build_object's own spacing), not re-rendered through jsonb.
    const expected = await s.client.query<{ v: string }>(`SELECT payload::text AS v FROM app_events WHERE severity IN ('warn', 'error')`);
    expect(exportedDocs(s.out)).toEqual(expected.rows.map((x) => x.v).sort());
  });
});

describe('Kestra flows as users write them', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('flows', 5000);
  });

  it('runs the nightly file flow as is', async () => {
    const r = await runCli(['run', '--config', path.join(FLOWS, 'nightly-file.yaml')], { cwd: s.dir, env: { LOGSHIP_SOURCE_URL: s.url } });
    expect(r.code).toBe(0);
    const files = listParts(path.join(s.dir, 'logship-out'));
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((f) => path.basename(f).startsWith('team-logs-') && f.endsWith('.json.gz'))).toBe(true);
    const expected = await sourceDocs(s.client, `(namespace = 'company.team' OR namespace LIKE 'company.team.%') AND level IN ('WARN', 'ERROR')`);
    expect(exportedDocs(path.join(s.dir, 'logship-out'))).toEqual(expected.map(normalize).sort());
  });

  it('plans the multi-exporter flow: S3 keys and Elasticsearch indices, no secret printed', async () => {
    const r = await runCli(['plan', '--config', path.join(FLOWS, 'multi-exporter.yaml'), '--json'], {
      cwd: s.dir, env: { LOGSHIP_SOURCE_URL: s.url, AWS_ACCESS_KEY_ID: 'AKIA-TEST', AWS_SECRET_KEY_ID: 'very-secret-key', ES_PASSWORD: 'es-password-1' },
    });
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.shards.length).toBeGreaterThan(0);
    expect(plan.shards[0].firstFiles.archive).toMatch(/^kestra-log-file\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/kestra-log-file-\d{8}T\d{6}Z-[0-9a-f]{8}-00001\.json\.gz$/);
    expect(plan.shards[0].firstFiles.search).toBe('index kestra-logs');
    expect(r.stdout + r.stderr).not.toMatch(/very-secret-key|es-password-1/);
  });

  it('refuses an unknown exporter type with one line', async () => {
    const flow = fs.readFileSync(path.join(FLOWS, 'nightly-file.yaml'), 'utf8').replace('io.kestra.plugin.ee.core.log.FileLogExporter', 'io.kestra.plugin.ee.pigeon.LogExporter');
    const cfg = writeConfig(s.dir, flow, 'pigeon.yaml');
    const r = await runCli(['run', '--config', cfg], { env: { LOGSHIP_SOURCE_URL: s.url } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^logship: tasks\[0\]\.logExporters\[0\]\.type: unknown exporter type "io\.kestra\.plugin\.ee\.pigeon\.LogExporter" \(logship types: file, .*\)\n$/);
  });
});

describe('errors are one line, name the problem, and leak no secret', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('errors', 100);
  });

  it('an unreachable server at startup is source-unavailable (exit 4), not a config error', async () => {
    const cfg = writeConfig(s.dir, { ...fileConfig(s), source: { url: "postgres://logship:{{ secret('PGPASS') }}@127.0.0.1:1/nope" } });
    const r = await runCli(['run', '--config', cfg], { env: { PGPASS: 'pa55-word-xyz' } });
    expect(r.code).toBe(4);
    expect(r.stderr).toBe('logship: source.url: cannot connect to postgres://127.0.0.1:1/nope: connection refused (is the server running and the port right?)\n');
  });

  it('a wrong password at startup is source-unavailable (exit 4) and redacted', async () => {
    const url = s.url.replace(/:[^:@/]+@/, ":{{ secret('PGPASS') }}@").replace('postgres:{{', 'nobody:{{');
    const cfg = writeConfig(s.dir, { ...fileConfig(s), source: { url } });
    const r = await runCli(['run', '--config', cfg], { env: { PGPASS: 'pa55-word-xyz' } });
    expect(r.code).toBe(4);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^logship: source\.url: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/\S+: .*nobody/);
    expect(r.stderr).not.toContain('pa55-word-xyz');
  });

  it('an unknown table', async () => {
    const cfg = writeConfig(s.dir, fileConfig(s, { source: { url: s.url, table: 'kestra_logs' } }));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: source.table: table "kestra_logs" not found in the source database\n');
  });

  it('an unknown column', async () => {
    const cfg = writeConfig(s.dir, fileConfig(s, { source: { url: s.url, columns: { level: 'severity' } } }));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^logship: source\.columns\.level: column "severity" not found in public\.logs \(columns: key, value, tenant_id, namespace, /);
  });

  it('a timestamp column of the wrong type', async () => {
    const cfg = writeConfig(s.dir, fileConfig(s, { source: { url: s.url, columns: { timestamp: 'flow_id' } } }));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: source.columns.timestamp: column "flow_id" is character varying(150); it must be timestamp or timestamptz\n');
  });

  it('a missing config file, an unknown command, a bad flag', async () => {
    expect(await runCli(['run', '--config', '/nope.yaml'])).toMatchObject({ code: 2, stderr: 'logship: --config: cannot read /nope.yaml: ENOENT\n' });
    const unknown = await runCli(['ship']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('logship: unknown command "ship"\nsee logship --help\n');
    expect(await runCli(['run'])).toMatchObject({ code: 2, stderr: 'logship: --config: is required\nsee logship run --help\n' });
    expect((await runCli(['demo', '--rows', 'many'])).stderr).toBe('logship: --rows: must be a positive number (got "many")\n');
  });

  it('with badRows: fail, a row that is not valid UTF-8 fails the run naming the row, and the offset does not move (exit 1)', async () => {
    const admin = s.client;
    const name = `t_sqlascii_${process.pid}`;
    await admin.query(`CREATE DATABASE ${name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    const url = s.url.replace(/\/[^/]+$/, `/${name}`);
    const { default: pgmod } = await import('pg');
    const c = new pgmod.Client({ connectionString: url, client_encoding: 'SQL_ASCII' } as never);
    await c.connect();
    await c.query(`CREATE TABLE events (id text PRIMARY KEY, ts timestamptz NOT NULL, msg text)`);
    await c.query(`INSERT INTO events SELECT 'ok-' || g, now() - interval '10 minutes' + g * interval '1 ms', 'fine ' || g FROM generate_series(1, 50) g`);
    await c.query(`INSERT INTO events VALUES ('bad-row-7', now() - interval '9 minutes', convert_from('\\x6869ff'::bytea, 'SQL_ASCII'))`);
    await c.end();
    const cfg = writeConfig(s.dir, {
      source: { url, table: 'events', columns: { timestamp: 'ts', key: 'id', level: null, namespace: null, tenant: null, body: 'msg' } },
      lookbackPeriod: 'P1D', workers: 1, badRows: 'fail', state: { type: 'file', path: path.join(s.dir, 'utf8-state.json') },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(s.dir, 'utf8-out') }],
    }, 'utf8.yaml');
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('logship:'))).toEqual([
      expect.stringMatching(/^logship: shard 0 \(\S+\): row key="bad-row-7": body is not valid UTF-8; the offset stays at the last fully exported shard and a rerun resumes from there$/),
    ]);
    const state = JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout);
    expect(state.offset).toBeNull();
    expect(listParts(path.join(s.dir, 'utf8-out'))).toEqual([]);
  });

  it('an unwritable output directory fails before any work (exit 2, naming the option and the cause)', async () => {
    const blocker = path.join(s.dir, 'blocker');
    fs.writeFileSync(blocker, 'a file where a directory should be');
    const cfg = writeConfig(s.dir, fileConfig(s, {}, { directory: path.join(blocker, 'out') }));
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`logship: logExporters[0].directory: cannot create ${path.join(blocker, 'out')}: ${blocker} is a file, not a directory (ENOTDIR)\n`);
  });
});

describe('progress, plan and state', () => {
  it('logs structured progress lines off a TTY, in order, and a final summary', async () => {
    const s = await setup('progress', 6000);
    const cfg = writeConfig(s.dir, fileConfig(s, { source: { url: s.url, fetchSize: 200 } }));
    // A line per batch and per finished shard instead of per timer tick: the content and order
    // are then the run's, not the machine's speed.
    const r = await runCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_PROGRESS_EVERY_BATCH: '1' } });
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const progress = lines.filter((l) => l.msg === 'progress') as { rows: number; expectedRows: number; rowsPerSec: unknown; shardsDone: number; shards: number }[];
    for (const line of progress) {
      expect(line).toMatchObject({ expectedRows: 6000, shards: 6 });
      expect(typeof line.rowsPerSec).toBe('number');
    }
    // Every finished shard reports once, and rows and shards only ever move forward.
    expect([...new Set(progress.map((l) => l.shardsDone))].filter((n) => n > 0)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.rows).toBeGreaterThanOrEqual(progress[i - 1]!.rows);
      expect(progress[i]!.shardsDone).toBeGreaterThanOrEqual(progress[i - 1]!.shardsDone);
    }
    // Batches report while their shard runs: rows show up before the first shard finishes.
    expect(progress.some((l) => l.shardsDone === 0 && l.rows > 0)).toBe(true);
    expect(progress.at(-1)).toMatchObject({ rows: 6000, shardsDone: 6, etaSeconds: 0 });
    expect(lines.at(-1)).toMatchObject({ msg: 'run finished', status: 'ok', rows: 6000 });
  });

  it('plan shows window, shards and file names and writes nothing; state --reset forgets the offset', async () => {
    const s = await setup('plan', 5000);
    const cfg = writeConfig(s.dir, fileConfig(s));
    const p = await runCli(['plan', '--config', cfg, '--json']);
    expect(p.code).toBe(0);
    const plan = JSON.parse(p.stdout);
    expect(plan).toMatchObject({ rows: 5000, method: 'exact', storedOffset: null, unfinishedRun: null });
    expect(plan.shards).toHaveLength(5);
    expect(plan.shards[0].firstFiles.files).toMatch(/^kestra-log-file-\d{8}T\d{6}Z-[0-9a-f]{8}-00001\.ndjson\.gz$/);
    expect(listParts(s.out)).toEqual([]);
    const human = await runCli(['plan', '--config', cfg]);
    expect(human.stdout).toMatch(/rows: 5,000 \(counted\) in 5 shards, 2 workers/);

    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const state = await runCli(['state', '--config', cfg]);
    expect(state.stdout).toMatch(/^offsetKey LogShipper-state \(postgres table logship_state\)\noffset: \d{4}-/);
    expect((await runCli(['state', '--config', cfg, '--reset'])).stdout).toContain('state reset');
    expect(JSON.parse((await runCli(['state', '--config', cfg, '--reset', '--json'])).stdout)).toEqual({
      offsetKey: 'LogShipper-state', store: 'postgres table logship_state', reset: true, offset: null, unfinishedRun: null, lookbackPeriod: 'P1D',
    });
    expect(JSON.parse((await runCli(['state', '--config', cfg, '--json'])).stdout).offset).toBeNull();
  });
});
