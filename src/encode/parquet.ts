import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { OutputOptions } from '../config/types.js';
import type { RowBatch } from '../source/row_batch.js';
import type { ParquetColumn, SourceTable } from '../source/table.js';
import { formatExtension, type PartEncoder, type PartFormat, type Push } from './part_format.js';

type Compressor = (input: Uint8Array) => Uint8Array;
type SchemaElement = Record<string, unknown>;

const require = createRequire(import.meta.url);

function compressors(): Record<string, Compressor> {
  const out: Record<string, Compressor> = { GZIP: (b) => zlib.gzipSync(b, { level: 6 }) };
  const z = zlib as unknown as { zstdCompressSync?: (b: Uint8Array) => Buffer };
  if (z.zstdCompressSync) out.ZSTD = (b) => z.zstdCompressSync!(b);
  else {
    try {
      const napi = require('zstd-napi') as { compress(b: Uint8Array, p: Record<string, number>): Buffer };
      out.ZSTD = (b) => napi.compress(b, { compressionLevel: 3 });
    } catch {
      // Unreachable in practice: config validation refuses ZSTD when neither zstd is available.
    }
  }
  return out;
}

function schemaElement(c: ParquetColumn): SchemaElement {
  const repetition_type = c.required ? 'REQUIRED' : 'OPTIONAL';
  switch (c.kind) {
    case 'string':
      return { name: c.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type };
    case 'json':
      return { name: c.name, type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' }, repetition_type };
    case 'int32':
      return { name: c.name, type: 'INT32', repetition_type };
    case 'int64':
      return { name: c.name, type: 'INT64', repetition_type };
    case 'double':
      return { name: c.name, type: 'DOUBLE', repetition_type };
    case 'boolean':
      return { name: c.name, type: 'BOOLEAN', repetition_type };
    case 'timestamp':
      return { name: c.name, type: 'INT64', converted_type: 'TIMESTAMP_MICROS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' }, repetition_type };
  }
}

/** "2026-11-22T01:02:03.123456+00:00" (to_jsonb of a timestamp) -> µs since the epoch. */
function isoToMicros(s: string): bigint | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[3] ?? 'Z'}`);
  if (Number.isNaN(ms)) return null;
  return BigInt(ms) * 1000n + BigInt((m[2] ?? '').padEnd(6, '0'));
}

function convert(c: ParquetColumn, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (c.kind) {
    case 'string':
      return typeof v === 'string' ? v : JSON.stringify(v);
    case 'json':
      return JSON.stringify(v);
    case 'int32':
      return typeof v === 'number' ? v | 0 : Number.parseInt(String(v), 10);
    case 'int64':
      return typeof v === 'number' ? BigInt(Math.trunc(v)) : BigInt(String(v));
    case 'double':
      return Number(v);
    case 'boolean':
      return Boolean(v);
    case 'timestamp':
      return typeof v === 'string' ? isoToMicros(v) : null;
  }
}

/**
 * Parquet via hyparquet-writer's incremental ParquetWriter: rows collect into column arrays of
 * one row group (rowGroupSize rows), each full group is encoded and streamed out at once, and
 * only the footer waits for the end. Memory is bounded by one row group, whatever the file size.
 */
export function parquetFormat(options: OutputOptions, table: SourceTable): PartFormat {
  const columns = table.parquet;
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }, ...columns.map(schemaElement)];
  const codec = options.parquetCompression === 'NONE' ? 'UNCOMPRESSED' : options.parquetCompression;
  const rowGroupSize = options.rowGroupSize;
  const needsDoc = columns.some((c) => c.from === 'field' || c.from === 'document');
  return {
    extension: formatExtension('PARQUET'),
    contentType: 'application/vnd.apache.parquet',
    outerCompression: false,
    async open(push: Push): Promise<PartEncoder> {
      const writer = new ByteWriter();
      let flushing: Promise<void> = Promise.resolve();
      // Called by the writer after each row group: hand the bytes on and reuse the buffer.
      Object.assign(writer, {
        flush(): Promise<void> {
          const bytes = Buffer.from(new Uint8Array(writer.buffer, 0, writer.index));
          writer.index = 0;
          flushing = flushing.then(() => push(bytes));
          return flushing;
        },
        finish(): Promise<void> {
          return (writer as unknown as { flush(): Promise<void> }).flush();
        },
      });
      const pw = new ParquetWriter({ writer, schema: schema as never, codec: codec as never, compressors: compressors(), createdBy: 'logship' });
      let data: unknown[][] = columns.map(() => []);
      let count = 0;
      const flushGroup = async () => {
        if (count === 0) return;
        const columnData = columns.map((c, j) => ({ name: c.name, data: data[j]! }));
        data = columns.map(() => []);
        count = 0;
        await pw.write({ columnData: columnData as never, rowGroupSize: Number.MAX_SAFE_INTEGER });
      };
      return {
        async rows(batch: RowBatch, from: number, to: number) {
          for (let i = from; i < to; i++) {
            const doc = needsDoc ? (JSON.parse(batch.body.toString('utf8', batch.start(i), batch.ends[i]! - 1)) as Record<string, unknown>) : null;
            for (let j = 0; j < columns.length; j++) {
              const c = columns[j]!;
              let v: unknown;
              if (c.from === 'key') v = batch.key(i);
              else if (c.from === 'ts') v = BigInt(batch.tsMicros[i]!);
              else if (c.from === 'document') v = convert(c, doc);
              else v = convert(c, doc![c.field!]);
              data[j]!.push(v);
            }
            if (++count >= rowGroupSize) await flushGroup();
          }
        },
        async close() {
          await flushGroup();
          await pw.finish();
        },
      };
    },
  };
}
