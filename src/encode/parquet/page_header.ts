import type { ByteSink } from './byte_sink.js';

/** parquet.thrift enums, by their wire numbers. */
export const PageType = { DATA_PAGE: 0, DICTIONARY_PAGE: 2 } as const;
export const Encoding = { PLAIN: 0, RLE: 3, RLE_DICTIONARY: 8 } as const;

// Thrift compact protocol: a field header is (id delta << 4) | type; i32 is a zigzag varint.
const I32 = 5;
const STRUCT = 12;

function field(out: ByteSink, delta: number, type: number): void {
  out.u8((delta << 4) | type);
}

function i32(out: ByteSink, delta: number, v: number): void {
  field(out, delta, I32);
  out.varint(((v << 1) ^ (v >> 31)) >>> 0);
}

/**
 * A PageHeader (the only thrift written per page; the footer goes through hyparquet-writer).
 * A data page (v1) carries values, encoding and the definition-level encoding (RLE); a dictionary
 * page carries its entry count and PLAIN.
 */
export function writePageHeader(out: ByteSink, kind: 'data' | 'dictionary', uncompressed: number, compressed: number, numValues: number, encoding: number): void {
  i32(out, 1, kind === 'data' ? PageType.DATA_PAGE : PageType.DICTIONARY_PAGE); // 1: type
  i32(out, 1, uncompressed); // 2: uncompressed_page_size
  i32(out, 1, compressed); // 3: compressed_page_size
  if (kind === 'data') {
    field(out, 2, STRUCT); // 5: data_page_header
    i32(out, 1, numValues); // 1: num_values (nulls included)
    i32(out, 1, encoding); // 2: encoding
    i32(out, 1, Encoding.RLE); // 3: definition_level_encoding
    i32(out, 1, Encoding.RLE); // 4: repetition_level_encoding (no repetition levels are written)
    out.u8(0);
  } else {
    field(out, 4, STRUCT); // 7: dictionary_page_header
    i32(out, 1, numValues); // 1: num_values
    i32(out, 1, Encoding.PLAIN); // 2: encoding
    out.u8(0);
  }
  out.u8(0);
}
