import type { FileMetaData, RowGroup, SchemaElement } from 'hyparquet';
import { ByteWriter } from 'hyparquet-writer';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import type { OutputOptions } from './options.js';
import type { RowBatch } from '../source/row_batch.js';
import type { ParquetColumn, SourceTable } from '../source/table.js';
import { ByteSink } from './parquet/byte_sink.js';
import { ColumnChunkBuilder, type PageCompressor } from './parquet/column_chunk.js';
import { pageCompressor } from './parquet/compressors.js';
import { formatExtension, type PartEncoder, type PartFormat, type Push } from './part_encoder.js';

const MAGIC = Buffer.from('PAR1', 'latin1');

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
function isoToMicros(s: string): number | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[3] ?? 'Z'}`);
  if (Number.isNaN(ms)) return null;
  return ms * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

/** Where a column's value comes from in a row. */
const enum From { Key, Ts, Wire, Doc, Document }

/** A decimal integer in bytes [s, e) (optional sign, ≤ 15 digits), or NaN. */
function asciiInt(b: Buffer, s: number, e: number): number {
  let neg = false;
  if (s < e && (b[s] === 0x2d || b[s] === 0x2b)) neg = b[s++] === 0x2d;
  if (s === e || e - s > 15) return Number.NaN;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return Number.NaN;
    v = v * 10 + d;
  }
  return neg ? -v : v;
}

/** A value as PostgreSQL's text output sends it, into a column of its kind. */
function addText(col: ColumnChunkBuilder, kind: ParquetColumn['kind'], b: Buffer, s: number, e: number): void {
  switch (kind) {
    case 'string':
    case 'json':
      return col.addBytes(b, s, e);
    case 'int32': {
      let v = asciiInt(b, s, e);
      // A number in another spelling ("3.0", "1e2"): truncated, as `v | 0` did for numbers.
      if (Number.isNaN(v)) v = Number(b.toString('latin1', s, e));
      return Number.isFinite(v) ? col.addInt32(v | 0) : col.addNull();
    }
    case 'int64':
    case 'timestamp': {
      const v = asciiInt(b, s, e);
      if (!Number.isNaN(v)) return col.addInt64(v);
      try {
        return col.addBigInt64(BigInt(b.toString('latin1', s, e)));
      } catch {
        return col.addNull();
      }
    }
    case 'double':
      return col.addDouble(Number(b.toString('latin1', s, e)));
    case 'boolean':
      return col.addBoolean(b[s] === 0x74); // 't' / 'true'
  }
}

/** A value of the parsed document (the path without wire columns), into a column of its kind. */
function addValue(col: ColumnChunkBuilder, kind: ParquetColumn['kind'], v: unknown): void {
  if (v === null || v === undefined) return col.addNull();
  switch (kind) {
    case 'string':
      return col.addString(typeof v === 'string' ? v : JSON.stringify(v));
    case 'json':
      return col.addString(JSON.stringify(v));
    case 'int32': {
      const n = typeof v === 'number' ? v : Number.parseInt(String(v), 10);
      return Number.isFinite(n) ? col.addInt32(n | 0) : col.addNull();
    }
    case 'int64':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return col.addInt64(v);
      try {
        return col.addBigInt64(BigInt(typeof v === 'number' ? Math.trunc(v) : String(v)));
      } catch {
        return col.addNull();
      }
    case 'double':
      return col.addDouble(Number(v));
    case 'boolean':
      return col.addBoolean(Boolean(v));
    case 'timestamp': {
      const us = typeof v === 'string' ? isoToMicros(v) : null;
      return us === null ? col.addNull() : col.addInt64(us);
    }
  }
}

/**
 * Parquet written column by column by logship's own encoder (src/encode/parquet/): each row's
 * values are appended as bytes to the row group's column chunks; a full row group (rowGroupSize
 * rows) is encoded into pages, compressed and streamed out at once, and only the footer waits
 * for the end. Memory is bounded by one row group, whatever the file size.
 *
 * Values come from the row (key, event time) and, for the document's fields, from the extra
 * columns PostgreSQL sent with it (`RowBatch.wire`, see ParquetColumn.sql) as raw bytes, so no
 * document is parsed. A batch without them (the cursor reader) parses each document instead.
 */
export function parquetFormat(options: OutputOptions, table: SourceTable): PartFormat {
  const columns = table.parquet;
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }, ...columns.map(schemaElement)];
  const codec = pageCompressor(options.parquetCompression);
  const rowGroupSize = options.rowGroupSize;
  const wired = wireColumns(table);
  return {
    extension: formatExtension('PARQUET'),
    contentType: 'application/vnd.apache.parquet',
    outerCompression: false,
    async open(push: Push): Promise<PartEncoder> {
      const chunks = columns.map((c) => new ColumnChunkBuilder(c, rowGroupSize));
      const rowGroups: RowGroup[] = [];
      let offset = 0;
      let rows = 0;
      let lastGroupBytes = 1 << 16;
      await push(MAGIC);
      offset += MAGIC.length;
      const flushGroup = async () => {
        if (rows === 0) return;
        // A fresh sink per group: the previous one may still be on its way to the target.
        const out = new ByteSink(lastGroupBytes);
        const group = writeRowGroup(chunks, out, offset, rows, codec.name, codec.compress);
        rowGroups.push(group);
        offset += out.length;
        lastGroupBytes = out.length;
        rows = 0;
        await push(out.view());
      };
      return {
        async rows(batch: RowBatch, from: number, to: number) {
          const wire = batch.wire && batch.wire.width === wired.count ? batch.wire : null;
          const needsDoc = wire === null ? wired.docWithoutWire : wired.docWithWire;
          for (let i = from; i < to; i++) {
            const doc = needsDoc ? (JSON.parse(batch.body.toString('utf8', batch.start(i), batch.ends[i]! - 1)) as Record<string, unknown>) : null;
            for (let j = 0; j < chunks.length; j++) {
              const col = chunks[j]!;
              const c = columns[j]!;
              const from = wired.from[j]!;
              if (from === From.Key) col.addBytes(batch.keyBytes, i === 0 ? 0 : batch.keyEnds[i - 1]!, batch.keyEnds[i]!);
              else if (from === From.Ts) col.addInt64(batch.tsMicros[i]!);
              else if (from === From.Wire && wire !== null) {
                const k = i * wire.width + wired.wireIndex[j]!;
                const len = wire.lens[k]!;
                if (len < 0) col.addNull();
                else addText(col, c.kind, wire.bytes, wire.starts[k]!, wire.starts[k]! + len);
              } else if (from === From.Document) addValue(col, c.kind, doc);
              else addValue(col, c.kind, doc![c.field!]);
            }
            if (++rows >= rowGroupSize) await flushGroup();
          }
        },
        async close() {
          await flushGroup();
          const writer = new ByteWriter();
          const total = rowGroups.reduce((n, g) => n + g.num_rows, 0n);
          const meta: FileMetaData = { version: 2, schema, num_rows: total, row_groups: rowGroups, created_by: 'logship', metadata_length: 0 };
          writeMetadata(writer, meta);
          await push(Buffer.concat([new Uint8Array(writer.buffer, 0, writer.index), MAGIC]));
        },
      };
    },
  };
}

function writeRowGroup(chunks: ColumnChunkBuilder[], out: ByteSink, offset: number, rows: number, codec: string, compress: PageCompressor): RowGroup {
  const columns = chunks.map((c) => c.write(out, offset, codec, compress));
  for (const c of chunks) c.reset();
  return {
    columns,
    total_byte_size: columns.reduce((n, c) => n + c.meta_data!.total_uncompressed_size, 0n),
    num_rows: BigInt(rows),
    file_offset: BigInt(offset),
    total_compressed_size: BigInt(out.length),
  };
}

/** Each column's source, and its index among the wire columns the reader adds to a batch. */
function wireColumns(table: SourceTable): { from: From[]; wireIndex: number[]; count: number; docWithWire: boolean; docWithoutWire: boolean } {
  let count = 0;
  const wireIndex: number[] = [];
  const from = table.parquet.map((c, j): From => {
    wireIndex[j] = -1;
    if (c.from === 'key') return From.Key;
    if (c.from === 'ts') return From.Ts;
    if (c.sql !== undefined) {
      wireIndex[j] = count++;
      return From.Wire;
    }
    return c.from === 'document' ? From.Document : From.Doc;
  });
  const parsed = (c: ParquetColumn) => c.from === 'field' || c.from === 'document';
  // Without wire values (the cursor reader) every field column reads the parsed document.
  return { from, wireIndex, count, docWithWire: table.parquet.some((c) => parsed(c) && c.sql === undefined), docWithoutWire: table.parquet.some(parsed) };
}
