import type { ColumnChunk, Statistics } from 'hyparquet';
import type { ParquetColumn } from '../../source/table.js';
import { ByteDictionary } from './byte_dictionary.js';
import { ByteSink } from './byte_sink.js';
import { Encoding, writePageHeader } from './page_header.js';
import { bitWidthFor, writeHybrid } from './rle_hybrid.js';

export type PageCompressor = (page: Buffer) => Buffer;
export type PhysicalType = 'BYTE_ARRAY' | 'INT32' | 'INT64' | 'DOUBLE' | 'BOOLEAN';

/** A data page closes once its values reach this size (a 10 MB value still makes one page). */
const PAGE_BYTES = 1 << 20;
/** Dictionary attempt: given up past this many entries or bytes, or when most values are new. */
const MAX_DICT_ENTRIES = 8192;
const MAX_DICT_BYTES = 1 << 20;
const DICT_PROBATION = 128;

export function physicalType(kind: ParquetColumn['kind']): PhysicalType {
  switch (kind) {
    case 'string':
    case 'json':
      return 'BYTE_ARRAY';
    case 'int32':
      return 'INT32';
    case 'int64':
    case 'timestamp':
      return 'INT64';
    case 'double':
      return 'DOUBLE';
    case 'boolean':
      return 'BOOLEAN';
  }
}

/**
 * One column of one row group, built value by value into its PLAIN bytes (plus definition levels
 * when OPTIONAL, plus a dictionary attempt for byte arrays), then written out as compressed pages.
 * Values arrive as raw bytes or plain numbers: no per-value JS objects on the way in.
 */
export class ColumnChunkBuilder {
  readonly type: PhysicalType;
  private readonly optional: boolean;
  /** PLAIN-encoded non-null values (booleans: one byte each, bit-packed at write time). */
  private readonly values = new ByteSink(1 << 16);
  private defs: Uint8Array;
  rows = 0;
  private nonNull = 0;
  /** Page cuts: row index and value-byte offset where each page after the first starts. */
  private cutRows: number[] = [];
  private cutBytes: number[] = [];
  private cutNonNull: number[] = [];
  private pageStart = 0;
  // Dictionary attempt (byte arrays only); null once given up for this chunk.
  private readonly dictionary: ByteDictionary | null;
  private dict: ByteDictionary | null = null;
  private indices: Int32Array;
  private readonly scratch = new ByteSink(1 << 16);
  // Statistics for readers that skip row groups: numeric min/max as they arrive (NaN left out).
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private bigMin: bigint | null = null;
  private bigMax: bigint | null = null;

  constructor(readonly column: ParquetColumn, private capacity: number) {
    this.type = physicalType(column.kind);
    this.optional = !column.required;
    this.defs = new Uint8Array(this.optional ? capacity : 0);
    this.indices = new Int32Array(this.type === 'BYTE_ARRAY' ? capacity : 0);
    this.dictionary = this.type === 'BYTE_ARRAY' ? new ByteDictionary(MAX_DICT_ENTRIES) : null;
    this.reset();
  }

  reset(): void {
    this.values.reset();
    this.rows = 0;
    this.nonNull = 0;
    this.cutRows.length = 0;
    this.cutBytes.length = 0;
    this.cutNonNull.length = 0;
    this.pageStart = 0;
    this.dictionary?.reset();
    this.dict = this.dictionary;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
    this.bigMin = null;
    this.bigMax = null;
  }

  addNull(): void {
    if (!this.optional) throw new Error(`Parquet column ${this.column.name} is REQUIRED but got no value`);
    this.ensureRow();
    this.defs[this.rows++] = 0;
  }

  addBytes(src: Uint8Array, start: number, end: number): void {
    this.ensureRow();
    const v = this.values;
    v.u32(end - start);
    const at = v.length;
    v.bytes(src, start, end);
    if (this.dict) this.dictAdd(v.buf, at, v.length);
    this.valueAdded();
  }

  addString(s: string): void {
    this.ensureRow();
    const v = this.values;
    const lenAt = v.length;
    v.u32(0);
    const n = v.utf8(s);
    v.buf.writeUInt32LE(n, lenAt);
    if (this.dict) this.dictAdd(v.buf, lenAt + 4, v.length);
    this.valueAdded();
  }

  addInt32(x: number): void {
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    this.values.i32(x);
    this.valueAdded();
  }

  /** An INT64 exactly representable as a double (timestamps in µs, most counters). */
  addInt64(x: number): void {
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    this.values.i64(x);
    this.valueAdded();
  }

  addBigInt64(x: bigint): void {
    if (this.bigMin === null || x < this.bigMin) this.bigMin = x;
    if (this.bigMax === null || x > this.bigMax) this.bigMax = x;
    this.values.big64(x);
    this.valueAdded();
  }

  addDouble(x: number): void {
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    this.values.f64(x);
    this.valueAdded();
  }

  addBoolean(x: boolean): void {
    this.values.u8(x ? 1 : 0);
    this.valueAdded();
  }

  /** Rows past the row group's size grow the arrays (the caller flushes at that size). */
  private ensureRow(): void {
    if (this.rows < this.capacity) return;
    this.capacity *= 2;
    if (this.optional) {
      const defs = new Uint8Array(this.capacity);
      defs.set(this.defs);
      this.defs = defs;
    }
    if (this.type === 'BYTE_ARRAY') {
      const indices = new Int32Array(this.capacity);
      indices.set(this.indices);
      this.indices = indices;
    }
  }

  private valueAdded(): void {
    this.ensureRow();
    if (this.optional) this.defs[this.rows] = 1;
    this.rows++;
    this.nonNull++;
    if (this.values.length - this.pageStart >= PAGE_BYTES) {
      this.pageStart = this.values.length;
      this.cutRows.push(this.rows);
      this.cutBytes.push(this.values.length);
      this.cutNonNull.push(this.nonNull);
    }
  }

  private dictAdd(src: Uint8Array, start: number, end: number): void {
    const dict = this.dict!;
    const before = dict.size;
    const index = dict.indexOf(src, start, end);
    if (index < 0 || (index === before && (dict.plain.length > MAX_DICT_BYTES || (index >= DICT_PROBATION && index * 4 > this.nonNull)))) {
      // Mostly distinct values (ids, messages): PLAIN it is, for the rest of this chunk.
      this.dict = null;
      return;
    }
    this.indices[this.nonNull] = index;
  }

  /**
   * Writes the chunk's pages to `out` (whose byte 0 sits at `fileOffset` in the file) and returns
   * its footer entry. Dictionary encoding is used when the attempt survived and is smaller.
   */
  write(out: ByteSink, fileOffset: number, codec: string, compress: PageCompressor): ColumnChunk {
    const chunkStart = out.length;
    let uncompressed = 0;
    let dictionaryPageOffset: bigint | undefined;
    let dataPageOffset = fileOffset + out.length;
    let pages = 0;
    const encodings = ['RLE'];
    const dict = this.dict;
    const bitWidth = dict ? bitWidthFor(Math.max(0, dict.size - 1)) : 0;
    const useDict = dict !== null && dict.size > 0 && dict.plain.length + Math.ceil((this.nonNull * bitWidth) / 8) + 16 < this.values.length;
    if (useDict) {
      dictionaryPageOffset = BigInt(fileOffset + out.length);
      uncompressed += this.page(out, 'dictionary', dict.plain.view(), dict.size, Encoding.PLAIN, compress);
      dataPageOffset = fileOffset + out.length;
      const p = this.scratch;
      p.reset();
      this.levels(p, 0, this.rows);
      p.u8(bitWidth);
      writeHybrid(p, this.indices, 0, this.nonNull, bitWidth);
      uncompressed += this.page(out, 'data', p.view(), this.rows, Encoding.RLE_DICTIONARY, compress);
      pages = 1;
      encodings.push('PLAIN', 'RLE_DICTIONARY');
    } else {
      const rowCuts = [0, ...this.cutRows, this.rows];
      const byteCuts = [0, ...this.cutBytes, this.values.length];
      const nonNullCuts = [0, ...this.cutNonNull, this.nonNull];
      for (let k = 0; k + 1 < rowCuts.length; k++) {
        const r0 = rowCuts[k]!;
        const r1 = rowCuts[k + 1]!;
        if (r1 === r0 && k > 0) continue;
        const p = this.scratch;
        p.reset();
        this.levels(p, r0, r1);
        if (this.type === 'BOOLEAN') this.packBooleans(p, nonNullCuts[k]!, nonNullCuts[k + 1]!);
        else p.bytes(this.values.buf, byteCuts[k]!, byteCuts[k + 1]!);
        uncompressed += this.page(out, 'data', p.view(), r1 - r0, Encoding.PLAIN, compress);
        pages++;
      }
      encodings.unshift('PLAIN');
    }
    return {
      file_offset: BigInt(fileOffset + chunkStart),
      meta_data: {
        type: this.type,
        encodings: encodings as never,
        path_in_schema: [this.column.name],
        codec: codec as never,
        num_values: BigInt(this.rows),
        total_uncompressed_size: BigInt(uncompressed),
        total_compressed_size: BigInt(out.length - chunkStart),
        data_page_offset: BigInt(dataPageOffset),
        statistics: this.statistics(useDict ? dict : null),
        ...(dictionaryPageOffset === undefined ? {} : { dictionary_page_offset: dictionaryPageOffset }),
      },
    };
  }

  /**
   * Null count, and min/max where they come cheap: numbers as tracked, byte arrays only when
   * dictionary-encoded (the comparison runs over the entries, not every value).
   */
  private statistics(dict: ByteDictionary | null): Statistics {
    const stats: Statistics = { null_count: BigInt(this.rows - this.nonNull) };
    if (this.type === 'INT64') {
      let lo = this.min <= this.max ? BigInt(this.min) : null;
      let hi = this.min <= this.max ? BigInt(this.max) : null;
      if (this.bigMin !== null && (lo === null || this.bigMin < lo)) lo = this.bigMin;
      if (this.bigMax !== null && (hi === null || this.bigMax > hi)) hi = this.bigMax;
      if (lo !== null && hi !== null) Object.assign(stats, { min_value: lo, max_value: hi });
    } else if ((this.type === 'INT32' || this.type === 'DOUBLE') && this.min <= this.max) {
      Object.assign(stats, { min_value: this.min, max_value: this.max });
    } else if (this.type === 'BYTE_ARRAY' && dict !== null && dict.size > 0) {
      const [lo, hi] = dict.minMax();
      Object.assign(stats, { min_value: lo, max_value: hi });
    }
    return stats;
  }

  /** Definition levels of rows [r0, r1), length-prefixed as data page v1 wants; none if REQUIRED. */
  private levels(p: ByteSink, r0: number, r1: number): void {
    if (!this.optional) return;
    const lenAt = p.length;
    p.u32(0);
    const n = writeHybrid(p, this.defs, r0, r1, 1);
    p.buf.writeUInt32LE(n, lenAt);
  }

  /** PLAIN booleans are bit-packed, least significant bit first. */
  private packBooleans(p: ByteSink, from: number, to: number): void {
    const n = (to - from + 7) >> 3;
    p.ensure(n);
    p.buf.fill(0, p.length, p.length + n);
    const src = this.values.buf;
    for (let k = from; k < to; k++) if (src[k]) p.buf[p.length + ((k - from) >> 3)]! |= 1 << ((k - from) & 7);
    p.length += n;
  }

  /** Header + compressed body; returns the uncompressed size (header included), for the footer. */
  private page(out: ByteSink, kind: 'data' | 'dictionary', body: Buffer, numValues: number, encoding: number, compress: PageCompressor): number {
    const compressed = compress(body);
    const headerAt = out.length;
    writePageHeader(out, kind, body.length, compressed.length, numValues, encoding);
    const header = out.length - headerAt;
    out.bytes(compressed);
    return header + body.length;
  }
}
