import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { exportedDocs, listParts, listTempFiles, runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { killWhen, waitFor } from './helpers/wait.js';

let url: string;
let client: pg.Client;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('parquet'));
  await seedKestraLogs(client, { rows: 6000, start: isoAgo(3600), spanSeconds: 3500 });
  // A 1 MB message and a row with every optional field missing (nulls must stay nulls).
  await client.query(`INSERT INTO logs (key, value) VALUES
    ('big-one', jsonb_build_object('namespace','n.big','flowId','f','level','ERROR','timestamp', to_char(now() - interval '20 minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'message', repeat('ü✓', 349526))),
    ('bare-one', jsonb_build_object('namespace','n.bare','flowId','f','level','INFO','timestamp', to_char(now() - interval '19 minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))`);
});
afterAll(() => client.end());

/** The source as Parquet rows must come back: Kestra fields, µs timestamps, nulls kept. */
async function expectedRows(): Promise<Record<string, unknown>[]> {
  const r = await client.query<{ key: string; v: Record<string, unknown>; us: string }>(`SELECT key, value AS v, (extract(epoch from "timestamp") * 1000000)::int8::text AS us FROM logs`);
  return r.rows.map(({ key, v, us }) => ({
    timestamp: us,
    level: v.level ?? null, tenantId: v.tenantId ?? null, namespace: v.namespace ?? null, flowId: v.flowId ?? null, taskId: v.taskId ?? null,
    executionId: v.executionId ?? null, taskRunId: v.taskRunId ?? null, attemptNumber: v.attemptNumber ?? null, triggerId: v.triggerId ?? null,
    thread: v.thread ?? null, message: v.message ?? null, executionKind: v.executionKind ?? null, key,
  })).sort((a, b) => (a.key < b.key ? -1 : 1));
}

async function readAll(files: string[]) {
  const rows: Record<string, unknown>[] = [];
  for (const f of files) {
    const buf = fs.readFileSync(f);
    const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    for (const r of await parquetReadObjects({ file, compressors })) {
      // hyparquet returns TIMESTAMP(MICROS) as Date (ms); compare exact µs through the raw value instead.
      rows.push(r as Record<string, unknown>);
    }
  }
  return rows;
}

function config(dir: string, exporter: Record<string, unknown>, top: Record<string, unknown> = {}) {
  return writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `pq-${path.basename(dir)}`, ...top,
    logExporters: [{ id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET', ...exporter }],
  });
}

describe('Parquet output', () => {
  it('round-trips every Kestra column with declared types, nulls, non-ASCII and a 1 MB message', async () => {
    const dir = tempDir('pq');
    const r = await runCli(['run', '--config', config(dir, { rowGroupSize: 700 })]);
    expect(r.code).toBe(0);
    const files = listParts(path.join(dir, 'out'));
    expect(files.every((f) => f.endsWith('.parquet'))).toBe(true);
    const rows = await readAll(files);
    const expected = await expectedRows();
    const got = rows.map((x): Record<string, unknown> => ({ ...x, timestamp: String(BigInt((x.timestamp as Date).getTime()) * 1000n) })).sort((a, b) => (String(a.key) < String(b.key) ? -1 : 1));
    // Compare at ms (hyparquet's Date) here; the exact µs are checked against the raw column below.
    expect(got).toEqual(expected.map((e) => ({ ...e, timestamp: String((BigInt(e.timestamp as string) / 1000n) * 1000n) })));
    expect((got.find((x) => x.key === 'big-one')!.message as string).length).toBe(2 * 349526);
    expect(got.find((x) => x.key === 'bare-one')).toMatchObject({ tenantId: null, taskId: null, attemptNumber: null, thread: null });

    const buf = fs.readFileSync(files[0]!);
    const meta = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const schema = Object.fromEntries(meta.schema.slice(1).map((s) => [s.name, s]));
    expect(schema.timestamp).toMatchObject({ type: 'INT64', repetition_type: 'REQUIRED', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } });
    expect(schema.attemptNumber).toMatchObject({ type: 'INT32', repetition_type: 'OPTIONAL' });
    expect(schema.level).toMatchObject({ type: 'BYTE_ARRAY', converted_type: 'UTF8' });
    expect(meta.schema.slice(1).map((s) => s.name)).toEqual(['timestamp', 'level', 'tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'message', 'executionKind', 'key']);
    expect(meta.row_groups.length).toBeGreaterThan(1); // rowGroupSize 700 on ~1500-row files
    const chunks = meta.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!));
    expect(new Set(chunks.map((c) => c.codec))).toEqual(new Set(['ZSTD']));
    // Dictionary encoding where it pays: the level column's pages are dictionary-encoded.
    expect(chunks.find((c) => c.path_in_schema[0] === 'level')!.encodings).toContain('RLE_DICTIONARY');
    // Exact microseconds, read raw (without the TIMESTAMP conversion).
    const raw = await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), compressors, columns: ['timestamp', 'key'], utf8: true, parsers: { timestampFromMicroseconds: (v: bigint) => v } as never });
    const exact = new Map(expected.map((e) => [e.key, e.timestamp]));
    for (const x of raw) expect(String(x.timestamp)).toBe(exact.get(x.key as string));
  });

  it('reads the fields as PostgreSQL text columns (COPY) and writes what the document path writes, 10 MB message and odd values included', async () => {
    const { url: oddUrl, client: c } = await freshDatabase('parquet_wire');
    await seedKestraLogs(c, { rows: 900, start: isoAgo(3000), spanSeconds: 2400 });
    const at = (m: number) => `to_char(now() - interval '${m} minutes', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
    await c.query(`INSERT INTO logs (key, value) VALUES
      ('odd-10mb', jsonb_build_object('namespace','n.big','flowId','f','level','ERROR','timestamp', ${at(9)}, 'message', repeat('é✓x', 1398102))),
      ('odd-text', jsonb_build_object('namespace','n.ö','flowId','f "q" \\ b','level','INFO','timestamp', ${at(8)}, 'message', E'tab\there\nnewline 🚀 日本', 'taskId', '', 'attemptNumber', '7')),
      ('odd-null', jsonb_build_object('namespace','n','flowId','f','level','WARN','timestamp', ${at(7)}, 'taskId', 'null'::jsonb, 'attemptNumber', 'null'::jsonb, 'thread', 42)),
      ('odd-json', jsonb_build_object('namespace','n','flowId','f','level','WARN','timestamp', ${at(6)}, 'message', jsonb_build_object('k', jsonb_build_array(1, 'x')), 'attemptNumber', 2))`);
    const read = async (stream: 'copy' | 'cursor') => {
      const dir = tempDir(`pq-wire-${stream}`);
      const cfg = writeConfig(dir, {
        source: { url: oddUrl, stream }, lookbackPeriod: 'P1D', workers: 1, offsetKey: `w-${stream}`,
        logExporters: [{ id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET', rowGroupSize: 250 }],
      });
      expect((await runCli(['run', '--config', cfg])).code).toBe(0);
      const files = listParts(path.join(dir, 'out'));
      const rows = (await readAll(files)).sort((a, b) => (String(a.key) < String(b.key) ? -1 : 1));
      const b = fs.readFileSync(files[0]!);
      return { rows, groups: parquetMetadata(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)).row_groups.length };
    };
    const copy = await read('copy');
    const cursor = await read('cursor');
    expect(copy.rows).toHaveLength(904);
    expect(copy.groups).toBeGreaterThan(2);
    const byKey = (rows: Record<string, unknown>[], k: string) => rows.find((r) => r.key === k)!;
    expect((byKey(copy.rows, 'odd-10mb').message as string)).toBe('é✓x'.repeat(1398102));
    expect(byKey(copy.rows, 'odd-text')).toMatchObject({ namespace: 'n.ö', flowId: 'f "q" \\ b', message: 'tab\there\nnewline 🚀 日本', taskId: '', attemptNumber: 7 });
    // JSON null is null; a number in a string column is its text; JSON null in an INT32 column too.
    expect(byKey(copy.rows, 'odd-null')).toMatchObject({ taskId: null, attemptNumber: null, thread: '42', message: null });
    // A non-string value keeps its JSON text: as PostgreSQL writes it (COPY) or as JSON.stringify does (cursor).
    expect(byKey(copy.rows, 'odd-json')).toMatchObject({ message: '{"k": [1, "x"]}', attemptNumber: 2 });
    expect(byKey(cursor.rows, 'odd-json')).toMatchObject({ message: '{"k":[1,"x"]}', attemptNumber: 2 });
    // Everything else is identical, value for value, on both paths.
    const withoutJson = (rows: Record<string, unknown>[]) => rows.map((r) => (r.key === 'odd-json' ? { ...r, message: null } : r));
    expect(withoutJson(copy.rows)).toEqual(withoutJson(cursor.rows));
    await c.end();
  });

  it.each(['SNAPPY', 'GZIP', 'NONE'])('writes readable files with parquetCompression %s', async (codec) => {
    const dir = tempDir(`pq-${codec}`);
    expect((await runCli(['run', '--config', config(dir, { parquetCompression: codec })])).code).toBe(0);
    const files = listParts(path.join(dir, 'out'));
    const buf = fs.readFileSync(files[0]!);
    const meta = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    expect(meta.row_groups[0]!.columns[0]!.meta_data!.codec).toBe(codec === 'NONE' ? 'UNCOMPRESSED' : codec);
    expect((await readAll(files)).length).toBe(6002);
  });

  it('rotates at maxLinesPerFile', async () => {
    const dir = tempDir('pq-rotate');
    expect((await runCli(['run', '--config', config(dir, { maxLinesPerFile: 400 })])).code).toBe(0);
    const files = listParts(path.join(dir, 'out'));
    const counts = files.map((f) => {
      const b = fs.readFileSync(f);
      return Number(parquetMetadata(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)).num_rows);
    });
    expect(Math.max(...counts)).toBe(400);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(6002);
  });

  it('survives kill -9 and a rerun with no duplicate and no gap', async () => {
    const dir = tempDir('pq-kill');
    const cfg = config(dir, { maxLinesPerFile: 300, rowGroupSize: 100 }, { source: { url, fetchSize: 100 } });
    await killWhen(startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '25' } }), '4 Parquet parts written', () => listParts(path.join(dir, 'out')).length >= 4);
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(listTempFiles(path.join(dir, 'out'))).toEqual([]);
    const keys = (await readAll(listParts(path.join(dir, 'out')))).map((r) => r.key as string).sort();
    expect(keys).toEqual((await expectedRows()).map((e) => e.key));
  });

  it('reads a mapped table of simple column types as text columns, equal to the document path value for value', async () => {
    const { url: mUrl, client: c } = await freshDatabase('parquet_wire_mapped', false);
    await c.query(`CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz NOT NULL, local timestamp, n smallint, big bigint, ok boolean, r real, d double precision, num numeric, note text, tag varchar(8))`);
    await c.query(`INSERT INTO ev SELECT g, now() - interval '1 hour' + g * interval '1.000001 s', CASE WHEN g % 11 = 0 THEN 'infinity' ELSE '2001-02-03 04:05:06.789012'::timestamp + g * interval '1 day' END,
      CASE WHEN g % 5 = 0 THEN NULL ELSE (g % 30000) - 15000 END, CASE WHEN g = 7 THEN 9007199254740993 ELSE -g * 10000000000 END, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
      g / 7.0, g / 3.0, g / 8.0, CASE WHEN g % 7 = 0 THEN NULL ELSE 'nöté ' || g END, 't' || (g % 4) FROM generate_series(1, 1200) g`);
    const read = async (stream: 'copy' | 'cursor') => {
      const dir = tempDir(`pq-mapped-${stream}`);
      const cfg = writeConfig(dir, {
        source: { url: mUrl, table: 'ev', stream, columns: { timestamp: 'at', key: 'id', level: null, namespace: null, tenant: null, body: null } },
        lookbackPeriod: 'P1D', workers: 1, offsetKey: `m-${stream}`, logExporters: [{ id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET', rowGroupSize: 500 }],
      });
      expect((await runCli(['run', '--config', cfg])).code).toBe(0);
      return (await readAll(listParts(path.join(dir, 'out')))).sort((x, y) => Number(x.id) - Number(y.id));
    };
    const copy = await read('copy');
    expect(copy).toHaveLength(1200);
    const cursor = await read('cursor');
    // The document path goes through a JS number and rounds a bigint beyond 2^53; the text does not.
    expect(cursor[6]!.big).toBe(9007199254740992n);
    expect(copy).toEqual(cursor.map((r) => (r.id === 7n ? { ...r, big: 9007199254740993n } : r)));
    // Beyond 2^53, exact; infinity (no µs value) is null; real keeps its float4 digits.
    expect(copy[6]).toMatchObject({ id: 7n, big: 9007199254740993n, ok: false, r: 1, tag: 't3' });
    expect(copy[10]).toMatchObject({ local: null, n: 11 - 15000 });
    expect(copy[0]!.local).toEqual(new Date(Date.UTC(2001, 1, 4, 4, 5, 6, 789)));
    await c.end();
  });

  it('derives the schema of a mapped table from its PostgreSQL types', async () => {
    const { url: mappedUrl, client: c } = await freshDatabase('parquet_mapped', false);
    await c.query(`CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz NOT NULL, n int, big bigint, ok boolean, score double precision, tags jsonb, note text)`);
    await c.query(`INSERT INTO ev SELECT g, now() - interval '1 hour' + g * interval '1 s', CASE WHEN g % 5 = 0 THEN NULL ELSE g END, g * 10000000000, g % 2 = 0, g / 3.0,
      jsonb_build_object('g', g), CASE WHEN g % 7 = 0 THEN NULL ELSE 'nöté ' || g END FROM generate_series(1, 1500) g`);
    const dir = tempDir('pq-mapped');
    const cfg = writeConfig(dir, {
      source: { url: mappedUrl, table: 'ev', columns: { timestamp: 'at', key: 'id', level: null, namespace: null, tenant: null, body: null } },
      lookbackPeriod: 'P1D', workers: 1, logExporters: [{ id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET', parquetCompression: 'SNAPPY' }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    const files = listParts(path.join(dir, 'out'));
    const b = fs.readFileSync(files[0]!);
    const meta = parquetMetadata(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    expect(Object.fromEntries(meta.schema.slice(1).map((s) => [s.name, s.type]))).toEqual({ id: 'INT64', at: 'INT64', n: 'INT32', big: 'INT64', ok: 'BOOLEAN', score: 'DOUBLE', tags: 'BYTE_ARRAY', note: 'BYTE_ARRAY' });
    const rows = (await readAll(files)).sort((x, y) => Number(x.id) - Number(y.id));
    expect(rows).toHaveLength(1500);
    // JSON columns are annotated as such and hold the JSON text (which the reader parses), not
    // a JSON string of that text.
    expect(meta.schema.find((e) => e.name === 'tags')).toMatchObject({ converted_type: 'JSON' });
    expect(rows[4]).toMatchObject({ id: 5n, n: null, big: 50000000000n, ok: false, tags: { g: 5 }, note: 'nöté 5' });
    expect(meta.schema.find((e) => e.name === 'at')).toMatchObject({ type: 'INT64', logical_type: { type: 'TIMESTAMP', unit: 'MICROS' } });
    expect(rows[6]!.note).toBeNull();
    expect(rows[2]!.score).toBeCloseTo(1);
    await c.end();
  });
});

/** The COPY a running export's worker sent, as pg_stat_activity shows it (also once it is idle in its transaction). */
async function copyStatementOf(run: ReturnType<typeof startCli>, db: pg.Client): Promise<string> {
  let seen = '';
  await waitFor('the worker COPY in pg_stat_activity', async () => {
    if (run.child.exitCode !== null) throw new Error('the run ended before its COPY was seen');
    const r = await db.query<{ query: string }>(`SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY (SELECT %'`);
    seen = r.rows[0]?.query ?? '';
    return seen !== '';
  });
  return seen;
}

interface DeadLine { key: string | null; timestamp: string; reason: string; raw: string | null; fields?: Record<string, string | null> }

function deadLetters(dir: string): DeadLine[] {
  return listParts(dir).filter((f) => path.basename(f).startsWith('bad-rows-'))
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as DeadLine))
    .sort((a, b) => String(a.key).localeCompare(String(b.key)));
}

const KESTRA_FIELDS = ['level', 'tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'message', 'executionKind'];

describe('Parquet-only runs read no document', () => {
  it('selects only the fields when every exporter is Parquet, the document too beside an NDJSON exporter, and writes the same Parquet both ways', async () => {
    const run = async (label: string, ndjsonToo: boolean) => {
      const dir = tempDir(`pq-nodoc-${label}`);
      const exporters = [
        { id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET', rowGroupSize: 700 },
        ...(ndjsonToo ? [{ id: 'nd', type: 'file', directory: path.join(dir, 'nd'), format: 'NDJSON' }] : []),
      ];
      const cfg = writeConfig(dir, { source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, offsetKey: `nodoc-${label}`, logExporters: exporters });
      // Slowed between batches so the COPY is still the worker's statement when it is looked up.
      const started = startCli(['run', '--config', cfg], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '20' } });
      const copy = await copyStatementOf(started, client);
      expect((await started.done).code).toBe(0);
      const rows = (await readAll(listParts(path.join(dir, 'out')))).sort((a, b) => (String(a.key) < String(b.key) ? -1 : 1));
      return { copy, rows, dir };
    };
    const parquetOnly = await run('only', false);
    const mixed = await run('mixed', true);
    // In the document's place: '' or NULL (a NULL body), so PostgreSQL never prints the jsonb.
    expect(parquetOnly.copy).toMatch(/^COPY \(SELECT t\."key", t\."timestamp", CASE WHEN t\."value" IS NULL THEN NULL ELSE ''::text END, t\."value"->>'level', /);
    expect(mixed.copy).toMatch(/^COPY \(SELECT t\."key", t\."timestamp", t\."value", t\."value"->>'level', /);
    expect(parquetOnly.rows).toHaveLength(6002);
    expect(parquetOnly.rows).toEqual(mixed.rows);
    expect((parquetOnly.rows.find((x) => x.key === 'big-one')!.message as string).length).toBe(2 * 349526);
    expect(exportedDocs(path.join(mixed.dir, 'nd'))).toHaveLength(6002);
  });

  it('with delete: true, exports then deletes the rows, and late rows both by key lookup and by scan, read without documents', async () => {
    const { url: dUrl, client: c } = await freshDatabase('parquet_nodoc_delete');
    await seedKestraLogs(c, { rows: 2000, start: isoAgo(3000), spanSeconds: 2400 });
    const keysIn = async () => (await c.query<{ key: string }>('SELECT key FROM logs ORDER BY key')).rows.map((r) => r.key);
    const all = await keysIn();
    const dir = tempDir('pq-nodoc-delete');
    const out = path.join(dir, 'out');
    const cfg = writeConfig(dir, {
      source: { url: dUrl }, lookbackPeriod: 'P1D', safetyLag: 'PT0S', workers: 2, rowsPerShard: 1000, delete: true,
      logExporters: [{ id: 'pq', type: 'file', directory: out, format: 'PARQUET' }],
    });
    expect((await runCli(['run', '--config', cfg])).code).toBe(0);
    expect(await keysIn()).toEqual([]);
    // Late rows behind the offset: a few (found by key), then many (each range read by a scan).
    for (const [round, env] of [[1, {}], [2, { LOGSHIP_TEST_MAX_KEYED_LATE_ROWS: '0' }]] as const) {
      await seedKestraLogs(c, { rows: 300, start: isoAgo(2900), spanSeconds: 2000, seq: round * 1_000_000 });
      all.push(...(await keysIn()));
      const report = path.join(dir, `r${round}.json`);
      expect((await runCli(['run', '--config', cfg, '--report', report], { env })).code).toBe(0);
      expect(JSON.parse(fs.readFileSync(report, 'utf8'))).toMatchObject({ late: { rows: 300 }, deletedRows: 300 });
      expect(await keysIn()).toEqual([]);
    }
    expect((await readAll(listParts(out))).map((r) => r.key as string).sort()).toEqual(all.sort());
    await c.end();
  });

  it('dead-letters a NULL body, a non-UTF-8 field and an over-maxRowBytes row with their fields, and exports every other row', async () => {
    // SQL_ASCII (the only encoding that can hold non-UTF-8 text) and a Kestra-shaped table whose
    // document may be NULL (Kestra's own derives NOT NULL columns from it).
    const { url: baseUrl, client: admin } = await freshDatabase('parquet_nodoc_admin', false);
    const name = `t_parquet_nodoc_${process.pid}`;
    await admin.query(`CREATE DATABASE ${name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    await admin.end();
    const asciiUrl = baseUrl.replace(/\/[^/]+$/, `/${name}`);
    const c = new pg.Client({ connectionString: asciiUrl, client_encoding: 'SQL_ASCII' } as never);
    await c.connect();
    await c.query("SET TimeZone = 'UTC'");
    await c.query(`CREATE TABLE logs (key varchar(30) PRIMARY KEY, value jsonb, "timestamp" timestamptz NOT NULL, flow_id text, execution_id text)`);
    await c.query(`INSERT INTO logs (key, value, "timestamp") SELECT 'ok-' || lpad(g::text, 3, '0'), jsonb_build_object('namespace', 'n', 'flowId', 'f', 'level', 'INFO', 'message', 'fine ' || g),
      now() - interval '30 minutes' + g * interval '1 s' FROM generate_series(1, 50) g`);
    await c.query(`INSERT INTO logs (key, value, "timestamp") VALUES
      ('null-body', NULL, now() - interval '9 minutes'),
      ('bad-field', jsonb_build_object('namespace', 'n', 'level', 'WARN', 'message', convert_from('\\x6869ff'::bytea, 'SQL_ASCII')), now() - interval '8 minutes'),
      ('too-big', jsonb_build_object('namespace', 'n', 'flowId', 'f', 'level', 'INFO', 'message', repeat('x', 5000)), now() - interval '7 minutes')`);
    const run = async (label: string, ndjsonToo: boolean) => {
      const dir = tempDir(`pq-nodoc-bad-${label}`);
      const cfg = writeConfig(dir, {
        source: { url: asciiUrl, columns: { timestamp: 'timestamp', key: 'key', body: 'value', level: null, namespace: null, tenant: null } },
        lookbackPeriod: 'P1D', workers: 1, maxRowBytes: 4096, deadLetter: path.join(dir, 'dead'), offsetKey: `bad-${label}`,
        logExporters: [
          { id: 'pq', type: 'file', directory: path.join(dir, 'out'), format: 'PARQUET' },
          ...(ndjsonToo ? [{ id: 'nd', type: 'file', directory: path.join(dir, 'nd'), format: 'NDJSON' }] : []),
        ],
      });
      const r = await runCli(['run', '--config', cfg]);
      expect(r.code).toBe(3);
      const keys = (await readAll(listParts(path.join(dir, 'out')))).map((x) => x.key as string).sort();
      return { keys, dead: deadLetters(path.join(dir, 'dead')) };
    };
    const good = Array.from({ length: 50 }, (_, i) => `ok-${String(i + 1).padStart(3, '0')}`);
    const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
    const only = await run('only', false);
    expect(only.keys).toEqual(good);
    const nulls = Object.fromEntries(KESTRA_FIELDS.map((f) => [f, null]));
    expect(only.dead.map(({ timestamp: _t, ...rest }) => rest)).toEqual([
      { key: 'bad-field', reason: 'field message is not valid UTF-8', raw: null, fields: { ...nulls, namespace: b64('n'), level: b64('WARN'), message: b64(Buffer.from([0x68, 0x69, 0xff])) } },
      { key: 'null-body', reason: 'body is NULL', raw: null, fields: nulls },
      // The fields' bytes: INFO + n + f + 5000 x.
      { key: 'too-big', reason: 'fields are 5006 bytes, over maxRowBytes (4096)', raw: null, fields: { ...nulls, namespace: b64('n'), flowId: b64('f'), level: b64('INFO'), message: b64('x'.repeat(5000)) } },
    ]);
    expect(Object.keys(only.dead[0]!.fields!)).toEqual(KESTRA_FIELDS);
    // Beside an NDJSON exporter the document is read, and dead letters keep it whole.
    const mixed = await run('mixed', true);
    expect(mixed.keys).toEqual(good);
    expect(mixed.dead.map((d) => [d.key, d.reason, d.raw === null ? null : Buffer.from(d.raw, 'base64').length, 'fields' in d])).toEqual([
      ['bad-field', 'body is not valid UTF-8', expect.any(Number), false],
      ['null-body', 'body is NULL', null, false],
      ['too-big', expect.stringMatching(/^body is \d+ bytes, over maxRowBytes \(4096\)$/), expect.any(Number), false],
    ]);
    await c.end();
  });
});
