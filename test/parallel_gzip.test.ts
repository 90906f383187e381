import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ParallelGzip } from '../src/encode/parallel_gzip.js';
import { tempDir } from './helpers/cli.js';

/** Seeded bytes that compress like logs: repeated structure, varying values. */
function logLike(bytes: number, seed: number): Buffer {
  let s = seed;
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const line = `{"level":"INFO","namespace":"company.team","message":"row ${s} of ${n}","thread":"w-${s % 7}"}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

async function gzipThrough(input: Buffer, writeSizes: number[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < input.length; i++) {
    const n = writeSizes[i % writeSizes.length]!;
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  const out: Buffer[] = [];
  const gz = new ParallelGzip(1);
  gz.on('data', (c: Buffer) => out.push(c));
  await pipeline(Readable.from(chunks), gz);
  return Buffer.concat(out);
}

describe('parallel gzip (one member per 1 MiB block, or per batch-sized write)', () => {
  it('round-trips through zlib and the gzip command, across block edges and writes of every size', async () => {
    const dir = tempDir('pgzip');
    const MiB = 1024 * 1024;
    // [input size, write sizes (cycled), gzip members]
    for (const [size, writes, members] of [
      [0, [1], 1], [1, [1], 1], [MiB, [MiB], 1], [MiB + 1, [7, 65536, 1], 2], [5 * MiB + 333, [300_000, 1_500_000, 17], 6],
      // Batch-sized writes deflate from their own bytes, one member each (under 2 MiB), no copy.
      [5 * MiB + 333, [1_900_000], 3],
      [5 * MiB, [3 * MiB], 5],
    ] as const) {
      const input = logLike(size, size + 1);
      const gz = await gzipThrough(input, [...writes]);
      expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
      const file = path.join(dir, `x${size}.gz`);
      fs.writeFileSync(file, gz);
      // The system's gunzip reads every member, as any gzip reader must.
      expect(execFileSync('gzip', ['-dc', file], { maxBuffer: 64 * 1024 * 1024 }).equals(input)).toBe(true);
      // Members start at 1 MiB input boundaries, or at a large write's own (one, empty, for no input).
      expect(countMembers(gz)).toBe(members);
    }
  });

  it('compresses within 1% of one zlib stream at the same level', async () => {
    const input = logLike(8 * 1024 * 1024, 5);
    const parallel = await gzipThrough(input, [64 * 1024]);
    const single = zlib.gzipSync(input, { level: 1 });
    expect(parallel.length / single.length).toBeLessThan(1.01);
  });
});

/** Walks gzip members by inflating each and finding where the next header begins. */
function countMembers(gz: Buffer): number {
  let members = 0;
  let at = 0;
  while (at < gz.length) {
    expect([gz[at], gz[at + 1]]).toEqual([0x1f, 0x8b]);
    const inflater = zlib.inflateRawSync(gz.subarray(at + 10), { info: true } as zlib.ZlibOptions) as unknown as { engine: { bytesWritten: number } };
    at += 10 + inflater.engine.bytesWritten + 8;
    members++;
  }
  return members;
}
