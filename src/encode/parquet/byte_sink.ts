/** A growable little-endian byte buffer: the one place Parquet pages and chunks are assembled. */
export class ByteSink {
  buf: Buffer;
  length = 0;

  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Makes room for n more bytes (doubling, so appends stay amortised O(1)). */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  reset(): void {
    this.length = 0;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }

  /** An int64 held exactly in a double (|v| < 2^53): two 32-bit halves, no BigInt. */
  i64(v: number): void {
    this.ensure(8);
    const hi = Math.floor(v / 4294967296);
    this.buf.writeUInt32LE(v - hi * 4294967296, this.length);
    this.buf.writeInt32LE(hi, this.length + 4);
    this.length += 8;
  }

  big64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigInt64LE(v, this.length);
    this.length += 8;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }

  varint(v: number): void {
    this.ensure(5);
    while (v > 0x7f) {
      this.buf[this.length++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.length++] = v;
  }

  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    this.ensure(n);
    if (n < 32) {
      // Short values (most log fields): a loop beats the native copy's call overhead.
      const b = this.buf;
      let w = this.length;
      for (let i = start; i < end; i++) b[w++] = src[i]!;
    } else {
      this.buf.set(src.subarray(start, end), this.length);
    }
    this.length += n;
  }

  /** A UTF-8 string, with no intermediate Buffer. */
  utf8(s: string): number {
    const max = s.length * 3;
    this.ensure(max);
    const n = this.buf.write(s, this.length, 'utf8');
    this.length += n;
    return n;
  }

  view(start = 0, end = this.length): Buffer {
    return this.buf.subarray(start, end);
  }
}
