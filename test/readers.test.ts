import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { CopyBinaryParser, readWithCopy } from '../src/source/copy_reader.js';
import { readWithCursor } from '../src/source/cursor_reader.js';
import { shardSelect } from '../src/source/query.js';
import { describeTable, type SourceTable } from '../src/source/table.js';
import type { RowBatch } from '../src/source/row_batch.js';
import type { BadRow } from '../src/source/bad_rows.js';
import { KESTRA_COLUMNS } from '../src/config/schema.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { to as copyTo } from 'pg-copy-streams';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../src/core/paths.js';
import pgModule from 'pg';
import { freshDatabase } from './helpers/db.js';
import { connect } from '../src/source/connection.js';
import { rawBytesTap, readBufferSocket, sourceStream } from '../src/source/read_buffer_socket.js';

let client: pg.Client;
/** From logship's own connect(): its socket reads into one reused buffer. */
let tapClient: pg.Client;
let url: string;
let table: SourceTable;
const noFilters = { logLevelFilter: undefined, namespace: undefined, tenantId: undefined };
const all = { lo: { ts: '2000-01-01T00:00:00.000000Z', key: null }, hi: { ts: '2100-01-01T00:00:00.000000Z', key: null } };

/** A COPY that sends 299 rows, then fails with an ErrorResponse. */
const DIVIDES_BY_ZERO_AT_ROW_300 = `SELECT key::text, "timestamp", CASE WHEN n = 300 THEN (1 / (n - 300))::text::jsonb ELSE value END
  FROM (SELECT *, row_number() OVER (ORDER BY "timestamp", key) AS n FROM logs) t ORDER BY n`;

async function collect(gen: AsyncGenerator<RowBatch>) {
  const out = { body: [] as Buffer[], keys: [] as string[], ts: [] as number[], batches: 0 };
  for await (const b of gen) {
    out.batches++;
    out.body.push(b.body);
    for (let i = 0; i < b.count; i++) {
      out.keys.push(b.key(i));
      out.ts.push(b.tsMicros[i]!);
    }
  }
  return { ...out, bytes: Buffer.concat(out.body) };
}

beforeAll(async () => {
  ({ client, url } = await freshDatabase('readers'));
  await seedKestraLogs(client, { rows: 5000, start: '2026-01-01T00:00:00Z', spanSeconds: 3600, tieGroup: 7 });
  table = await describeTable(client, { url: undefined, password: undefined, table: 'logs', columns: KESTRA_COLUMNS, stream: 'copy', fetchSize: 1000, ordered: true });
  tapClient = await connect(url, 'readers-test');
});
afterAll(async () => {
  await client.end();
  await tapClient.end();
});

describe('the source socket', () => {
  it("is logship's reused-buffer socket for a plain connection, and Node's own under TLS", () => {
    expect(rawBytesTap((tapClient as unknown as { connection: { stream: object } }).connection.stream)).toBeDefined();
    expect(rawBytesTap(sourceStream({ ssl: false }))).toBeDefined();
    expect(rawBytesTap(sourceStream({ ssl: { rejectUnauthorized: false } }))).toBeUndefined();
  });
});

describe('loading pg', () => {
  // Each thread's start pays for what pg loads; run as a fresh process, as the CLI and workers are.
  const undiciLoadedAfter = (specifier: string) =>
    execFileSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(specifier)}); console.log(process.moduleLoadList.some((m) => m.includes('undici')), typeof navigator)`], { encoding: 'utf8' }).trim();

  it("through pg_preload does not load Node's fetch (undici) for pg's Cloudflare check, and leaves no navigator behind", () => {
    // Node ≥ 21 has a navigator of its own, and pg no Response to construct.
    const ownNavigator = typeof (globalThis as { navigator?: unknown }).navigator;
    if (ownNavigator === 'undefined') expect(undiciLoadedAfter('pg')).toBe('true undefined');
    expect(undiciLoadedAfter(path.join(packageRoot(), 'dist', 'src', 'source', 'pg_preload.js'))).toBe(`false ${ownNavigator}`);
  });
});

const SOCKETS = [
  { kind: 'a plain socket', reader: () => client, stream: undefined },
  { kind: 'a socket reading into one reused buffer', reader: () => tapClient, stream: readBufferSocket },
];

describe.each(SOCKETS)('COPY binary reader (fast path) over $kind', ({ reader, stream: proxyStream }) => {
  it('yields the same bytes, keys and times as the pg-query-stream path', async () => {
    const fast = await collect(readWithCopy(reader(), shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' }), 700));
    const simple = await collect(readWithCursor(client, shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'cursor' }), 700));
    expect(fast.keys.length).toBe(5000);
    expect(fast.bytes.equals(simple.bytes)).toBe(true);
    expect(fast.keys).toEqual(simple.keys);
    expect(fast.ts).toEqual(simple.ts);
    const expected = await client.query<{ v: string }>(`SELECT value::text AS v FROM logs ORDER BY "timestamp", key COLLATE "C"`);
    expect(fast.bytes.toString('utf8')).toBe(expected.rows.map((r) => `${r.v}\n`).join(''));
  });

  it('respects the batch size (the reader never holds more than one batch)', async () => {
    const got = await collect(readWithCopy(reader(), shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' }), 512));
    expect(got.batches).toBe(Math.ceil(5000 / 512));
  });

  it('parses a stream fed one byte at a time (rows split across every chunk boundary)', async () => {
    const sql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' });
    const raw: Buffer[] = [];
    const stream = client.query(copyTo(`COPY (${sql} LIMIT 300) TO STDOUT (FORMAT binary)`));
    const cursorSql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'cursor' });
    for await (const c of stream as AsyncIterable<Buffer>) raw.push(c);
    const whole = Buffer.concat(raw);
    const parser = new CopyBinaryParser(100);
    const batches: RowBatch[] = [];
    for (let i = 0; i < whole.length; i++) batches.push(...parser.push(whole.subarray(i, i + 1)));
    const last = parser.end();
    if (last) batches.push(last);
    const bytes = Buffer.concat(batches.map((b) => b.body));
    const reference = await collect(readWithCursor(client, `${cursorSql} LIMIT 300`, 100));
    expect(bytes.equals(reference.bytes)).toBe(true);
  });

  it('parses the same stream cut into random chunk sizes, including a row spanning many chunks', async () => {
    await client.query(`INSERT INTO logs (key, value) VALUES ('wide', jsonb_build_object('namespace','n','flowId','f','level','INFO','timestamp','2026-01-01T00:30:00Z','message', repeat('ab', 200000)))`);
    const sql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' });
    const raw: Buffer[] = [];
    const cursorSql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'cursor' });
    for await (const c of client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`)) as AsyncIterable<Buffer>) raw.push(c);
    const whole = Buffer.concat(raw);
    const reference = await collect(readWithCursor(client, cursorSql, 250));
    await client.query(`DELETE FROM logs WHERE key = 'wide'`);
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const maxChunk of [3, 97, 5000, 70000]) {
      const parser = new CopyBinaryParser(250);
      const batches: RowBatch[] = [];
      for (let i = 0; i < whole.length; ) {
        const n = 1 + Math.floor(rand() * maxChunk);
        batches.push(...parser.push(whole.subarray(i, i + n)));
        i += n;
      }
      const last = parser.end();
      if (last) batches.push(last);
      expect(Buffer.concat(batches.map((b) => b.body)).equals(reference.bytes)).toBe(true);
    }
  });

  it.each([false, true])('carries Parquet wire columns (NULLs, empty strings, a 300 KB value) through a stream fed one byte at a time (without the document: %s)', async (withoutDocument) => {
    await client.query(`INSERT INTO logs (key, value) VALUES ('wide-wire', jsonb_build_object('namespace','n','flowId','f','level','INFO','timestamp','2026-01-01T00:00:01Z','message', repeat('äb', 100000), 'taskId', ''))`);
    const wire = table.parquet.flatMap((c) => (c.sql ? [c.sql] : []));
    expect(wire).toHaveLength(12);
    const names = table.parquet.flatMap((c) => (c.sql ? [c.name] : []));
    const sql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy', wire, withoutDocument });
    const raw: Buffer[] = [];
    for await (const c of client.query(copyTo(`COPY (${sql} LIMIT 400) TO STDOUT (FORMAT binary)`)) as AsyncIterable<Buffer>) raw.push(c);
    const whole = Buffer.concat(raw);
    const expected = await client.query<{ k: string; v: (string | null)[] }>(`SELECT key AS k, ARRAY[${wire.join(', ')}] AS v FROM logs t ORDER BY "timestamp", key COLLATE "C" LIMIT 400`);
    await client.query(`DELETE FROM logs WHERE key = 'wide-wire'`);
    for (const chunk of [1, 4093]) {
      const parser = new CopyBinaryParser(150, withoutDocument ? { withoutDocument: names } : { wireColumns: wire.length });
      const batches: RowBatch[] = [];
      for (let i = 0; i < whole.length; i += chunk) batches.push(...parser.push(whole.subarray(i, i + chunk)));
      const last = parser.end();
      if (last) batches.push(last);
      const got: { k: string; v: (string | null)[] }[] = [];
      for (const b of batches) {
        for (let i = 0; i < b.count; i++) {
          const v: (string | null)[] = [];
          for (let k = i * 12; k < (i + 1) * 12; k++) v.push(b.wire!.lens[k]! < 0 ? null : b.wire!.bytes.toString('utf8', b.wire!.starts[k]!, b.wire!.starts[k]! + b.wire!.lens[k]!));
          got.push({ k: b.key(i), v });
          // Without documents a row's size is its fields' bytes (what maxBytesPerFile and progress count).
          if (withoutDocument) expect(b.ends[i]! - b.start(i)).toBe(v.reduce((n, x) => n + (x === null ? 0 : Buffer.byteLength(x)), 0));
        }
        expect(b.documents).toBe(!withoutDocument);
        if (withoutDocument) expect(b.body.length).toBe(0);
      }
      expect(got).toEqual(expected.rows);
      expect(got.find((r) => r.k === 'wide-wire')!.v[10]).toBe('äb'.repeat(100000));
    }
  });

  it('stops reading while the consumer is behind and starts again, many times over one COPY', async () => {
    const socket = (reader() as unknown as { connection: { stream: object } }).connection.stream;
    const tap = rawBytesTap(socket);
    const resume = tap?.resume;
    let restarts = 0;
    if (tap && resume) {
      tap.resume = () => {
        restarts++;
        resume();
      };
    }
    try {
      // 50-row batches of a 5000-row COPY: two waiting batches hold far less than the server
      // sends, so reading stops; each await below lets the socket fill before the next take.
      const got = { keys: [] as string[], body: [] as Buffer[] };
      for await (const b of readWithCopy(reader(), shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' }), 50)) {
        for (let i = 0; i < b.count; i++) got.keys.push(b.key(i));
        got.body.push(b.body);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const reference = await collect(readWithCursor(client, shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'cursor' }), 1000));
      expect(got.keys).toEqual(reference.keys);
      expect(Buffer.concat(got.body).equals(reference.bytes)).toBe(true);
      if (tap) expect(restarts).toBeGreaterThan(5);
    } finally {
      if (tap && resume) tap.resume = resume;
    }
  });

  it('stops early when the consumer stops (close)', async () => {
    const gen = readWithCopy(reader(), shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' }), 100);
    const first = await gen.next();
    expect(first.value?.count).toBe(100);
    await gen.return(undefined);
    // The connection is usable again right away.
    expect((await reader().query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('carries a 16 MB message intact', async () => {
    const big = 'x'.repeat(16 * 1024 * 1024 - 7) + 'é✓🚀';
    await client.query(`INSERT INTO logs (key, value) VALUES ('huge', jsonb_build_object('namespace','n','flowId','f','level','INFO','timestamp','2030-01-01T00:00:00Z','message', $1::text))`, [big]);
    const got = await collect(readWithCopy(reader(), shardSelect(table, noFilters, { ts: '2030-01-01T00:00:00.000000Z', key: null }, all.hi, { ordered: false, mode: 'copy' }), 10));
    expect(got.keys).toEqual(['huge']);
    expect(JSON.parse(got.bytes.toString('utf8')).message).toBe(big);
    await client.query(`DELETE FROM logs WHERE key = 'huge'`);
  });

  it('names the row when a body is NULL (error)', async () => {
    await client.query(`DROP TABLE IF EXISTS nullable; CREATE TABLE nullable (id text PRIMARY KEY, ts timestamptz NOT NULL, body jsonb)`);
    await client.query(`INSERT INTO nullable VALUES ('ok-1', '2026-01-01', '{"a":1}'), ('bad-2', '2026-01-01 00:00:01', NULL)`);
    const t = await describeTable(client, { url: undefined, password: undefined, table: 'nullable', stream: 'copy', fetchSize: 10, ordered: false, columns: { timestamp: 'ts', key: 'id', body: 'body', level: null, namespace: null, tenant: null, deleted: undefined, resource: null } });
    await expect(collect(readWithCopy(reader(), shardSelect(t, noFilters, all.lo, all.hi, { ordered: false, mode: 'copy' }), 10))).rejects.toThrow('row key="bad-2": body is NULL');
    await expect(collect(readWithCursor(client, shardSelect(t, noFilters, all.lo, all.hi, { ordered: false, mode: 'cursor' }), 10))).rejects.toThrow('row key="bad-2": body is NULL');
  });

  it('hands NULL and oversized rows to the dead-letter policy and goes on, on both paths', async () => {
    await client.query(`DROP TABLE IF EXISTS mixed; CREATE TABLE mixed (id text PRIMARY KEY, ts timestamptz NOT NULL, body jsonb)`);
    await client.query(`INSERT INTO mixed VALUES ('ok-1', '2026-01-01', '{"a":1}'), ('null-2', '2026-01-01 00:00:01', NULL),
      ('big-3', '2026-01-01 00:00:02', jsonb_build_object('m', repeat('é', 100))), ('ok-4', '2026-01-01 00:00:03', '{"b":2}')`);
    const t = await describeTable(client, { url: undefined, password: undefined, table: 'mixed', stream: 'copy', fetchSize: 10, ordered: true, columns: { timestamp: 'ts', key: 'id', body: 'body', level: null, namespace: null, tenant: null, deleted: undefined, resource: null } });
    for (const mode of ['copy', 'cursor'] as const) {
      const rejected: BadRow[] = [];
      const policy = { maxRowBytes: 150, reject: (r: BadRow) => rejected.push(r) };
      const sql = shardSelect(t, noFilters, all.lo, all.hi, { ordered: true, mode });
      const got = await collect(mode === 'copy' ? readWithCopy(reader(), sql, 10, { badRows: policy }) : readWithCursor(client, sql, 10, { badRows: policy }));
      expect(got.keys).toEqual(['ok-1', 'ok-4']);
      expect(got.bytes.toString('utf8')).toBe('{"a": 1}\n{"b": 2}\n');
      expect(rejected.map((r) => [r.key?.toString(), r.reason, r.raw?.length ?? null])).toEqual([
        ['null-2', 'body is NULL', null],
        ['big-3', 'body is 209 bytes, over maxRowBytes (150)', 209],
      ]);
    }
  });

  it('frames COPY messages cut at every kind of boundary by a fragmenting proxy, and gives the connection back', async () => {
    // Server-to-client bytes are re-sent in 1–40 byte writes (seeded), so message headers,
    // tuples and the CommandComplete/ReadyForQuery that follow CopyDone arrive split.
    let seed = 11;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const target = new URL(url);
    const proxy = net.createServer((down) => {
      down.setNoDelay(true);
      const up = net.connect(Number(target.port), target.hostname);
      up.setNoDelay(true);
      down.pipe(up);
      // One piece per event-loop turn: the client (in this process) reads each piece on its own.
      up.on('data', (chunk: Buffer) => {
        up.pause();
        void (async () => {
          for (let i = 0; i < chunk.length; ) {
            const n = 1 + Math.floor(rand() * 40);
            down.write(chunk.subarray(i, i + n));
            i += n;
            await new Promise((resolve) => setImmediate(resolve));
          }
          up.resume();
        })();
      });
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxied = new URL(url);
    proxied.port = String((proxy.address() as net.AddressInfo).port);
    const viaProxy = new pgModule.Client({ connectionString: proxied.toString(), stream: proxyStream });
    await viaProxy.connect();
    try {
      const sql = shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'copy' });
      const reference = await collect(readWithCursor(client, `${shardSelect(table, noFilters, all.lo, all.hi, { ordered: true, mode: 'cursor' })} LIMIT 400`, 1000));
      for (let round = 0; round < 2; round++) {
        const got = await collect(readWithCopy(viaProxy, `${sql} LIMIT 400`, 333));
        expect(got.keys).toEqual(reference.keys);
        expect(got.bytes.equals(reference.bytes)).toBe(true);
        // pg parsed CommandComplete and ReadyForQuery from the bytes handed back.
        expect((await viaProxy.query('SELECT 2 AS two')).rows[0].two).toBe(2);
      }
      // An ErrorResponse split the same way is handed to pg whole.
      await expect(collect(readWithCopy(viaProxy, DIVIDES_BY_ZERO_AT_ROW_300, 100))).rejects.toThrow('division by zero');
      expect((await viaProxy.query('SELECT 4 AS four')).rows[0].four).toBe(4);
    } finally {
      await viaProxy.end();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('raises a server error that arrives mid-COPY, after rows, and the connection stays usable', async () => {
    const seen: number[] = [];
    const reading = (async () => {
      for await (const b of readWithCopy(reader(), DIVIDES_BY_ZERO_AT_ROW_300, 100)) seen.push(b.count);
    })();
    await expect(reading).rejects.toThrow('division by zero');
    expect(seen.reduce((a, b) => a + b, 0)).toBeLessThan(300);
    expect((await reader().query('SELECT 3 AS three')).rows[0].three).toBe(3);
  });
});
