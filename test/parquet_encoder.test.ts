import { describe, expect, it } from 'vitest';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { parquetFormat } from '../src/encode/parquet.js';
import { ByteSink } from '../src/encode/parquet/byte_sink.js';
import { writeHybrid } from '../src/encode/parquet/rle_hybrid.js';
import type { OutputOptions, ParquetCodec } from '../src/encode/options.js';
import { RowBatchBuilder, type RowBatch } from '../src/source/row_batch.js';
import type { ParquetColumn, SourceTable } from '../src/source/table.js';
import { seeded as prng } from './helpers/seeded.js';


const options = (codec: ParquetCodec, rowGroupSize: number): OutputOptions => ({
  format: 'PARQUET', parquetCompression: codec, rowGroupSize, compression: 'none', compressionLevel: 0, maxLinesPerFile: 1e9, maxBytesPerFile: 1e12, logFilePrefix: 'p', keyTemplate: '{part}',
});

/** Encodes batches through the part encoder into one in-memory file. */
async function encode(columns: ParquetColumn[], batches: RowBatch[], codec: ParquetCodec, rowGroupSize: number): Promise<ArrayBuffer> {
  const parts: Buffer[] = [];
  const format = parquetFormat(options(codec, rowGroupSize), { parquet: columns } as SourceTable);
  const enc = await format.open(async (b) => void parts.push(Buffer.from(b)));
  for (const b of batches) await enc.rows(b, 0, b.count);
  await enc.close();
  const file = Buffer.concat(parts);
  return file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
}

async function read(file: ArrayBuffer): Promise<Record<string, unknown>[]> {
  // Raw µs (no Date conversion) so timestamps compare exactly.
  return (await parquetReadObjects({ file, compressors, utf8: true, parsers: { timestampFromMicroseconds: (v: bigint) => v } as never })) as Record<string, unknown>[];
}

const WIRED: ParquetColumn[] = [
  { name: 'ts', kind: 'timestamp', from: 'ts', required: true },
  { name: 'level', kind: 'string', from: 'field', field: 'level', sql: 'x' },
  { name: 'id', kind: 'string', from: 'field', field: 'id', sql: 'x' },
  { name: 'n', kind: 'int32', from: 'field', field: 'n', sql: 'x' },
  { name: 'big', kind: 'int64', from: 'field', field: 'big', sql: 'x' },
  { name: 'score', kind: 'double', from: 'field', field: 'score', sql: 'x' },
  { name: 'ok', kind: 'boolean', from: 'field', field: 'ok', sql: 'x' },
  { name: 'at', kind: 'timestamp', from: 'field', field: 'at', sql: 'x' },
  { name: 'key', kind: 'string', from: 'key', required: true },
];

interface Row { key: string; ts: number; level: string | null; id: string | null; n: number | null; big: bigint | null; score: number | null; ok: boolean | null; at: bigint | null }

/** Rows whose nulls, value lengths and cardinalities are drawn from a seeded PRNG. */
function seededRows(count: number, seed: number): Row[] {
  const r = prng(seed);
  const levels = ['INFO', 'WARN', 'ERROR', 'DEBUG', 'TRACE'];
  const rows: Row[] = [];
  for (let i = 0; i < count; i++) {
    // Long null runs and isolated nulls both occur, so RLE and bit-packed levels are both written.
    const nullish = (p: number) => (i % 1000 < 40 ? true : r() < p);
    const big = r() < 0.1 ? 2n ** 62n - BigInt(i) : BigInt(Math.floor((r() - 0.5) * 2 ** 52));
    rows.push({
      key: `k-${String(i).padStart(7, '0')}`,
      ts: 1_790_000_000_000_000 + i * 1013 + (i % 7),
      level: nullish(0.05) ? null : levels[Math.floor(r() * levels.length)]!,
      // Mostly distinct and sometimes large (forcing several 1 MiB pages), with non-ASCII.
      id: nullish(0.2) ? null : `${'ü✓日本'.repeat(Math.floor(r() * (i % 97 === 0 ? 40_000 : 20)))}#${i}`,
      n: nullish(0.3) ? null : Math.floor((r() - 0.5) * 2 ** 31),
      big: nullish(0.3) ? null : big,
      score: nullish(0.3) ? null : (r() - 0.5) * 1e6,
      ok: nullish(0.5) ? null : r() < 0.5,
      at: nullish(0.3) ? null : BigInt(Math.floor(r() * 2 ** 50)),
    });
  }
  return rows;
}

/** The rows as a reader would deliver them: documents plus (when `wired`) the text wire values. */
function batchesOf(rows: Row[], wired: boolean, size: number): RowBatch[] {
  const out: RowBatch[] = [];
  const width = WIRED.filter((c) => c.sql).length;
  for (let s = 0; s < rows.length; s += size) {
    const b = new RowBatchBuilder(size, 1 << 30, null, wired ? width : 0);
    for (const row of rows.slice(s, s + size)) {
      const atIso = row.at === null ? null : new Date(Number(row.at / 1000n)).toISOString().replace('Z', `${String(row.at % 1000n).padStart(3, '0')}Z`);
      const doc = { level: row.level, id: row.id, n: row.n, big: row.big === null ? null : Number(row.big), score: row.score, ok: row.ok, at: atIso };
      b.addStrings(row.key, row.ts, JSON.stringify(doc));
      if (!wired) continue;
      const texts = [row.level, row.id, row.n?.toString(), row.big?.toString(), row.score?.toString(), row.ok === null ? null : row.ok ? 'true' : 'false', row.at?.toString()];
      for (const t of texts) {
        if (t === null || t === undefined) b.addWire(Buffer.alloc(0), 0, -1);
        else {
          const bytes = Buffer.from(t);
          b.addWire(bytes, 0, bytes.length);
        }
      }
    }
    out.push(b.take());
  }
  return out;
}

function expected(rows: Row[]): Record<string, unknown>[] {
  return rows.map((r) => ({ ts: BigInt(r.ts), level: r.level, id: r.id, n: r.n, big: r.big, score: r.score, ok: r.ok, at: r.at, key: r.key }));
}

describe('Parquet column-chunk encoder', () => {
  it('writes every column kind from wire values with seeded nulls, page cuts and dictionary bailouts, read back exactly by hyparquet', async () => {
    const rows = seededRows(12_000, 7);
    const file = await encode(WIRED, batchesOf(rows, true, 1000), 'ZSTD', 5000);
    const got = await read(file);
    expect(got).toHaveLength(rows.length);
    expect(got).toEqual(expected(rows));
    const meta = parquetMetadata(file);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([5000, 5000, 2000]);
    const chunk = (g: number, name: string) => meta.row_groups[g]!.columns.find((c) => c.meta_data!.path_in_schema[0] === name)!.meta_data!;
    // Five levels: a dictionary pays. Distinct ids: PLAIN.
    expect(chunk(0, 'level').encodings).toContain('RLE_DICTIONARY');
    expect(chunk(0, 'id').encodings).not.toContain('RLE_DICTIONARY');
    expect(chunk(0, 'key').encodings).not.toContain('RLE_DICTIONARY');
    // Statistics per chunk: null counts, exact numeric min/max, byte-array min/max from the dictionary.
    const first = rows.slice(0, 5000);
    const nonNull = <T,>(xs: (T | null)[]) => xs.filter((x): x is T => x !== null);
    expect(chunk(0, 'n').statistics).toMatchObject({ null_count: BigInt(first.filter((r) => r.n === null).length), min_value: Math.min(...nonNull(first.map((r) => r.n))), max_value: Math.max(...nonNull(first.map((r) => r.n))) });
    const bigs = nonNull(first.map((r) => r.big)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(chunk(0, 'big').statistics).toMatchObject({ min_value: bigs[0], max_value: bigs.at(-1) });
    expect(chunk(0, 'level').statistics).toMatchObject({ null_count: BigInt(first.filter((r) => r.level === null).length), min_value: 'DEBUG', max_value: 'WARN' });
    // Timestamps: hyparquet shows them as Dates (ms); the last group spans rows 10 000–11 999.
    expect(chunk(2, 'ts').statistics).toMatchObject({ null_count: 0n, min_value: new Date(Math.floor(rows[10_000]!.ts / 1000)), max_value: new Date(Math.floor(rows[11_999]!.ts / 1000)) });
    expect(chunk(2, 'id').statistics!.min_value).toBeUndefined();
    // Rows with ~480 KB ids push the id chunk past 1 MiB: it is cut into several pages.
    expect(Number(chunk(0, 'id').total_uncompressed_size)).toBeGreaterThan(2 << 20);
  });

  it('writes the same values from parsed documents when a batch has no wire values', async () => {
    const rows = seededRows(3000, 11).map((r) => ({ ...r, big: r.big === null ? null : BigInt.asIntN(52, r.big) }));
    const fromDocs = await read(await encode(WIRED, batchesOf(rows, false, 700), 'SNAPPY', 1000));
    const fromWire = await read(await encode(WIRED, batchesOf(rows, true, 700), 'SNAPPY', 1000));
    expect(fromDocs).toEqual(fromWire);
    expect(fromWire).toEqual(expected(rows));
  });

  it.each(['NONE', 'SNAPPY', 'GZIP', 'ZSTD'] as const)('round-trips with page codec %s', async (codec) => {
    const rows = seededRows(2500, 3);
    const file = await encode(WIRED, batchesOf(rows, true, 1000), codec, 1000);
    expect(parquetMetadata(file).row_groups[0]!.columns[0]!.meta_data!.codec).toBe(codec === 'NONE' ? 'UNCOMPRESSED' : codec);
    expect(await read(file)).toEqual(expected(rows));
  });

  it('keeps a dictionary of thousands of byte strings (shared prefixes, empty string, non-ASCII) and reads them back exactly', async () => {
    const columns: ParquetColumn[] = [{ name: 'v', kind: 'string', from: 'field', field: 'v', sql: 'x' }, { name: 'key', kind: 'string', from: 'key', required: true }];
    const r = prng(5);
    const values: (string | null)[] = [];
    // A new value every 8 rows or so: the dictionary is worth keeping; 2 000 distinct in all.
    for (let i = 0; i < 20_000; i++) values.push(r() < 0.02 ? null : i % 3 === 0 ? '' : `flow.ü${Math.floor(i / 8) % 2000}`);
    const b = new RowBatchBuilder(values.length, 1 << 30, null, 1);
    values.forEach((v, i) => {
      b.addStrings(`k${i}`, 0, '{}');
      const bytes = Buffer.from(v ?? '');
      b.addWire(bytes, 0, v === null ? -1 : bytes.length);
    });
    const file = await encode(columns, [b.take()], 'ZSTD', 20_000);
    expect(parquetMetadata(file).row_groups[0]!.columns[0]!.meta_data!.encodings).toContain('RLE_DICTIONARY');
    expect((await read(file)).map((x) => x.v)).toEqual(values);
  });

  it('gives the dictionary up on values that differ only where the hash does not look, and still writes them exactly', async () => {
    const columns: ParquetColumn[] = [{ name: 'v', kind: 'string', from: 'field', field: 'v', sql: 'x' }, { name: 'key', kind: 'string', from: 'key', required: true }];
    // Same length, same first/middle/last 8 bytes: every entry lands on one hash chain.
    const values = Array.from({ length: 8000 }, (_, i) => `AAAAAAAA${String(Math.floor(i / 8)).padStart(4, '0')}BBBBBBBBCCCC${String(Math.floor(i / 8)).padStart(4, '0')}DDDDDDDD`);
    const b = new RowBatchBuilder(values.length, 1 << 30, null, 1);
    values.forEach((v, i) => {
      b.addStrings(`k${i}`, 0, '{}');
      b.addWire(Buffer.from(v), 0, v.length);
    });
    const file = await encode(columns, [b.take()], 'ZSTD', 8000);
    expect(parquetMetadata(file).row_groups[0]!.columns[0]!.meta_data!.encodings).not.toContain('RLE_DICTIONARY');
    expect((await read(file)).map((x) => x.v)).toEqual(values);
  });

  it('writes a valid empty file when a part gets no rows', async () => {
    const file = await encode(WIRED, [], 'ZSTD', 100);
    expect(Number(parquetMetadata(file).num_rows)).toBe(0);
    expect(await read(file)).toEqual([]);
  });

  it('turns text that is not a number into null, and non-string JSON into its JSON text', async () => {
    const columns: ParquetColumn[] = [
      { name: 'n', kind: 'int32', from: 'field', field: 'n' },
      { name: 's', kind: 'string', from: 'field', field: 's' },
      { name: 'key', kind: 'string', from: 'key', required: true },
    ];
    const b = new RowBatchBuilder(10, 1 << 20);
    const docs = [{ n: '3', s: { a: [1, 'x'] } }, { n: 2.9, s: 42 }, { n: 'abc', s: null }, { s: 'plain "quoted" \\ text\n' }];
    docs.forEach((d, i) => b.addStrings(`k${i}`, 0, JSON.stringify(d)));
    const got = await read(await encode(columns, [b.take()], 'ZSTD', 10));
    expect(got).toEqual([
      { n: 3, s: '{"a":[1,"x"]}', key: 'k0' },
      { n: 2, s: '42', key: 'k1' },
      { n: null, s: null, key: 'k2' },
      { n: null, s: 'plain "quoted" \\ text\n', key: 'k3' },
    ]);
  });
});

describe('RLE/bit-packed hybrid', () => {
  /** Decodes the hybrid encoding (the spec's reader side), to check the writer's runs. */
  function decode(buf: Buffer, count: number, bitWidth: number): number[] {
    const out: number[] = [];
    let p = 0;
    while (out.length < count) {
      let header = 0;
      let shift = 0;
      for (;;) {
        const b = buf[p++]!;
        header |= (b & 0x7f) << shift;
        shift += 7;
        if (b < 0x80) break;
      }
      if ((header & 1) === 0) {
        let v = 0;
        for (let k = 0; k < (bitWidth + 7) >> 3; k++) v |= buf[p++]! << (8 * k);
        for (let k = 0; k < header >> 1; k++) out.push(v);
      } else {
        const n = (header >> 1) * 8;
        let acc = 0;
        let bits = 0;
        for (let k = 0; k < n; k++) {
          while (bits < bitWidth) {
            acc |= buf[p++]! << bits;
            bits += 8;
          }
          out.push(acc & ((1 << bitWidth) - 1));
          acc >>>= bitWidth;
          bits -= bitWidth;
        }
      }
    }
    return out.slice(0, count);
  }

  it.each([1, 3, 8, 13])('encodes seeded runs and noise at bit width %i so a decoder gets them back', (bitWidth) => {
    const r = prng(bitWidth);
    const values: number[] = [];
    while (values.length < 5000) {
      const v = Math.floor(r() * 2 ** bitWidth);
      const run = r() < 0.3 ? 1 + Math.floor(r() * 40) : 1;
      for (let k = 0; k < run; k++) values.push(v);
    }
    const sink = new ByteSink(16);
    const n = writeHybrid(sink, values, 0, values.length, bitWidth);
    expect(n).toBe(sink.length);
    expect(decode(sink.view(), values.length, bitWidth)).toEqual(values);
    // A sub-range encodes on its own.
    const sub = new ByteSink(16);
    writeHybrid(sub, values, 123, 4321, bitWidth);
    expect(decode(sub.view(), 4321 - 123, bitWidth)).toEqual(values.slice(123, 4321));
  });
});
