import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { snappyCompress } from 'hyparquet-writer/src/snappy.js';
import type { ParquetCodec } from '../options.js';
import type { PageCompressor } from './column_chunk.js';

const require = createRequire(import.meta.url);

function zstd(): PageCompressor {
  const z = zlib as unknown as { zstdCompressSync?: (b: Uint8Array) => Buffer };
  if (z.zstdCompressSync) return (b) => z.zstdCompressSync!(b);
  // Config validation refuses ZSTD when neither Node's zstd nor the zstd-napi addon loads.
  const napi = require('zstd-napi') as { Compressor: new () => { setParameters(p: Record<string, number>): void; compress(b: Uint8Array): Buffer } };
  // One reused context: a page is compressed without allocating a new zstd state.
  const c = new napi.Compressor();
  c.setParameters({ compressionLevel: 3 });
  return (b) => c.compress(b);
}

/** The page codec as a function; also the name the footer records. */
export function pageCompressor(codec: ParquetCodec): { name: string; compress: PageCompressor } {
  switch (codec) {
    case 'NONE':
      return { name: 'UNCOMPRESSED', compress: (b) => b };
    case 'GZIP':
      return { name: 'GZIP', compress: (b) => zlib.gzipSync(b, { level: 6 }) };
    case 'SNAPPY':
      return { name: 'SNAPPY', compress: (b) => { const s = snappyCompress(b); return Buffer.from(s.buffer, s.byteOffset, s.byteLength); } };
    case 'ZSTD':
      return { name: 'ZSTD', compress: zstd() };
  }
}
