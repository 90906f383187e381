import { createRequire } from 'node:module';
import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { ConfigError } from '../core/errors.js';
import { ParallelGzip } from './parallel_gzip.js';
import type { Compression } from './options.js';

export const COMPRESSION_EXTENSION: Record<Compression, string> = { gzip: '.gz', zstd: '.zst', none: '' };
export const CONTENT_ENCODING: Record<Compression, string | undefined> = { gzip: 'gzip', zstd: 'zstd', none: undefined };

type ZstdModule = { CompressStream: new (params: Record<string, number>) => Transform };
const require = createRequire(import.meta.url);
let zstdNapi: ZstdModule | null | undefined;
let zstdLoadError = '';

/** Node ≥ 22.15 ships zstd in zlib; older runtimes use the optional zstd-napi addon. */
function nativeZstd(): ((level: number) => Transform) | undefined {
  const z = zlib as unknown as { createZstdCompress?: (o: object) => Transform; constants: Record<string, number> };
  if (typeof z.createZstdCompress !== 'function') return undefined;
  return (level) => z.createZstdCompress!({ params: { [z.constants.ZSTD_c_compressionLevel!]: level } });
}

function loadZstdNapi(): ZstdModule | null {
  if (zstdNapi === undefined) {
    try {
      zstdNapi = require('zstd-napi') as ZstdModule;
    } catch (err) {
      zstdNapi = null;
      zstdLoadError = (err as Error).message.split('\n')[0]!;
    }
  }
  return zstdNapi;
}

/** Fails at config time, not mid-run, when zstd cannot work on this machine. */
export function assertCompressionAvailable(path: string, compression: Compression): void {
  if (compression !== 'zstd' || nativeZstd()) return;
  if (!loadZstdNapi()) {
    throw new ConfigError(path, `zstd needs Node >= 22.15 or the optional zstd-napi package, which did not load here (${zstdLoadError}); use gzip or install a C++ toolchain and reinstall`);
  }
}

/** A compressing Transform, or a PassThrough for `none`. */
export function createCompressor(compression: Compression, level: number): Transform {
  switch (compression) {
    case 'gzip':
      return new ParallelGzip(level);
    case 'zstd': {
      const native = nativeZstd();
      if (native) return native(level);
      const mod = loadZstdNapi();
      if (!mod) throw new ConfigError('compression', `zstd is unavailable: ${zstdLoadError}`);
      return new mod.CompressStream({ compressionLevel: level });
    }
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}
