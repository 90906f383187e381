import type { ByteSink } from './byte_sink.js';

/** Length of the run of equal values starting at i, counting at most `cap`. */
function runAt(values: ArrayLike<number>, i: number, to: number, cap: number): number {
  const v = values[i];
  let j = i + 1;
  const stop = Math.min(to, i + cap);
  while (j < stop && values[j] === v) j++;
  return j - i;
}

/**
 * Parquet's RLE/bit-packed hybrid encoding of values[from, to) at `bitWidth` bits (≤ 24), as used
 * for definition levels and dictionary indices: runs of 8 or more equal values become RLE runs,
 * everything between them bit-packed groups of 8 (the last group zero-padded; readers take only
 * the page's value count). Returns the bytes written.
 */
export function writeHybrid(out: ByteSink, values: ArrayLike<number>, from: number, to: number, bitWidth: number): number {
  const before = out.length;
  const valueBytes = (bitWidth + 7) >> 3;
  let i = from;
  while (i < to) {
    const run = runAt(values, i, to, Number.MAX_SAFE_INTEGER);
    if (run >= 8) {
      out.varint(run * 2);
      const v = values[i]!;
      for (let b = 0; b < valueBytes; b++) out.u8((v >>> (8 * b)) & 0xff);
      i += run;
      continue;
    }
    // Bit-packed groups until an RLE-worthy run starts at a group boundary (or the end).
    let end = i;
    do end += 8;
    while (end < to && runAt(values, end, to, 8) < 8);
    const groups = (end - i) >> 3;
    out.varint(groups * 2 + 1);
    out.ensure(groups * bitWidth);
    const buf = out.buf;
    let w = out.length;
    let acc = 0;
    let bits = 0;
    for (let k = i; k < end; k++) {
      acc |= (k < to ? values[k]! : 0) << bits;
      bits += bitWidth;
      while (bits >= 8) {
        buf[w++] = acc & 0xff;
        acc >>>= 8;
        bits -= 8;
      }
    }
    out.length = w;
    i = Math.min(end, to);
  }
  return out.length - before;
}

export function bitWidthFor(maxValue: number): number {
  // At least 1 bit: some readers reject width 0 for a one-entry dictionary.
  return Math.max(1, 32 - Math.clz32(maxValue));
}
