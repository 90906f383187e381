import type { Format } from './options.js';
import type { RowBatch } from '../source/row_batch.js';

/** Turns rows into the bytes of one file format. Stateless per row; the file writer tracks position. */
export interface Encoder {
  readonly extension: string;
  readonly contentType: string;
  /** Bytes that open a file (JSON's "["), or null. */
  head(): Buffer | null;
  /** Rows [from, to) of a batch; `first` says no row precedes them in this file. */
  rows(batch: RowBatch, from: number, to: number, first: boolean): Buffer;
  /** Bytes that close a file, or null. */
  tail(empty: boolean): Buffer | null;
}

/** NDJSON: the batch already is NDJSON, so encoding is a slice. */
export const ndjsonEncoder: Encoder = {
  extension: 'ndjson',
  contentType: 'application/x-ndjson',
  head: () => null,
  rows: (batch, from, to) => batch.body.subarray(batch.start(from), batch.ends[to - 1]),
  tail: () => null,
};

const OPEN = Buffer.from('[\n');
const CLOSE = Buffer.from('\n]\n');
const EMPTY_CLOSE = Buffer.from(']\n');

/** JSON: one array per file, a document per line, so `head` and `grep` still work on it. */
export const jsonEncoder: Encoder = {
  extension: 'json',
  contentType: 'application/json',
  head: () => OPEN,
  rows(batch, from, to, first) {
    const start = batch.start(from);
    const span = batch.ends[to - 1]! - start;
    // Each row gains a comma before its newline, except the first row of the file.
    const out = Buffer.allocUnsafe(span + (to - from));
    let w = 0;
    for (let i = from; i < to; i++) {
      if (i > from || !first) {
        out[w++] = 0x2c; // ','
        out[w++] = 0x0a; // '\n'
      }
      const s = batch.start(i);
      const e = batch.ends[i]! - 1;
      w += batch.body.copy(out, w, s, e);
    }
    return out.subarray(0, w);
  },
  tail: (empty) => (empty ? EMPTY_CLOSE : CLOSE),
};

export function encoderFor(format: Format): Encoder {
  switch (format) {
    case 'NDJSON':
      return ndjsonEncoder;
    case 'JSON':
      return jsonEncoder;
    default:
      throw new Error(`not supported yet: format ${format}`);
  }
}
