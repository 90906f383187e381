import { ByteSink } from './byte_sink.js';

const MAX_PROBES = 32;

/**
 * A dictionary of byte strings, looked up by their bytes: an open-addressing hash table over the
 * entries' PLAIN encoding (which is the dictionary page as written). No JS string is made per
 * value, which a Map keyed by strings would need.
 */
export class ByteDictionary {
  /** The entries, PLAIN-encoded (4-byte length + bytes): the dictionary page's body. */
  readonly plain = new ByteSink(1 << 12);
  size = 0;
  /** Entry index + 1 per slot, 0 = empty; twice the capacity keeps probes short. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly starts: Int32Array;
  private readonly lens: Int32Array;

  constructor(readonly capacity: number) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.slots = new Int32Array(n);
    this.mask = n - 1;
    this.starts = new Int32Array(capacity);
    this.lens = new Int32Array(capacity);
  }

  reset(): void {
    if (this.size > 0) this.slots.fill(0);
    this.size = 0;
    this.plain.reset();
  }

  /** The entry index of src[start, end), added if new; -1 when full or when probes run long. */
  indexOf(src: Uint8Array, start: number, end: number): number {
    // FNV-1a over the length and at most 24 bytes (first, middle and last 8): values are mostly
    // short and repeated. Values that differ elsewhere collide; a probe run past MAX_PROBES gives
    // the dictionary up (-1) rather than let such a column cost a long compare chain per value.
    const len = end - start;
    let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
    if (len <= 24) {
      for (let i = start; i < end; i++) h = Math.imul(h ^ src[i]!, 0x01000193);
    } else {
      const mid = start + ((len - 8) >> 1);
      for (let i = start; i < start + 8; i++) h = Math.imul(h ^ src[i]!, 0x01000193);
      for (let i = mid; i < mid + 8; i++) h = Math.imul(h ^ src[i]!, 0x01000193);
      for (let i = end - 8; i < end; i++) h = Math.imul(h ^ src[i]!, 0x01000193);
    }
    h ^= h >>> 15;
    let probes = 0;
    const bytes = this.plain.buf;
    for (let s = h & this.mask; ; s = (s + 1) & this.mask) {
      const e = this.slots[s]! - 1;
      if (e < 0) break;
      if (++probes > MAX_PROBES) return -1;
      if (this.lens[e] !== len) continue;
      const at = this.starts[e]!;
      let i = 0;
      while (i < len && bytes[at + i] === src[start + i]) i++;
      if (i === len) return e;
    }
    if (this.size >= this.capacity) return -1;
    const e = this.size++;
    this.plain.u32(len);
    this.starts[e] = this.plain.length;
    this.lens[e] = len;
    this.plain.bytes(src, start, end);
    // Re-probe: the table does not change while probing, so the first empty slot is still free.
    let s = h & this.mask;
    while (this.slots[s] !== 0) s = (s + 1) & this.mask;
    this.slots[s] = e + 1;
    return e;
  }

  /** The smallest and largest entry, in Parquet's (unsigned byte-wise) order. */
  minMax(): [Buffer, Buffer] {
    const entry = (e: number) => this.plain.buf.subarray(this.starts[e]!, this.starts[e]! + this.lens[e]!);
    let lo = entry(0);
    let hi = lo;
    for (let e = 1; e < this.size; e++) {
      const v = entry(e);
      if (Buffer.compare(v, lo) < 0) lo = v;
      if (Buffer.compare(v, hi) > 0) hi = v;
    }
    // Copies: the dictionary's buffer is reused by the next row group.
    return [Buffer.from(lo), Buffer.from(hi)];
  }
}
