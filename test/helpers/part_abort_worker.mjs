// A worker thread that writes two shards' parts at once through the real file sink, and makes one
// of them abort mid-part while the other keeps writing (see test/part_abort.test.ts). It runs in a
// worker thread because shards do, and because only there does Node track raw descriptors: a
// descriptor closed twice (once by a stream, once by its FileHandle) is reported as a process
// warning, which this thread collects and posts back. Plain JavaScript over the compiled dist/,
// since a worker thread cannot load the suite's TypeScript.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

const dist = new URL('../../dist/src/', import.meta.url);
const { RotatingPartWriter } = await import(new URL('sinks/part_writer.js', dist).href);
const { FileService } = await import(new URL('sinks/file/service.js', dist).href);
const { RowBatchBuilder } = await import(new URL('source/row_batch.js', dist).href);
const { shardId, tsToMicros } = await import(new URL('core/keyset.js', dist).href);

const warnings = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

const { root, mode, batches, rowsPerBatch, failAfterWrites } = workerData;
const lo = { ts: '2026-03-01T22:30:00.000000Z', key: null };
const hi = { ts: '2026-03-02T02:00:00.000000Z', key: null };
const shard = { index: 0, id: shardId('k', lo, hi), lo, hi, estimatedRows: 0 };
const options = {
  format: 'NDJSON', parquetCompression: 'ZSTD', rowGroupSize: 20_000, compression: 'gzip', compressionLevel: 1,
  maxLinesPerFile: 40, maxBytesPerFile: 1 << 30, logFilePrefix: 'logs', keyTemplate: '{prefix}/hour={hour}/{shard}-{part}.{ext}',
};

/** Batch n of a deterministic stream of rows, one a second, with 400-byte messages. */
function batch(n) {
  const b = new RowBatchBuilder(rowsPerBatch + 1, 1 << 30);
  for (let i = 0; i < rowsPerBatch; i++) {
    const row = n * rowsPerBatch + i;
    b.addStrings(`k${row}`, tsToMicros(lo.ts) + row * 1e6, JSON.stringify({ row, msg: `row ${row} ${'x'.repeat(400)}` }));
  }
  return b.take();
}

/** A disk that fills up: every write after the first `failAfterWrites` (to any part) fails with ENOSPC, as write(2) does. */
let writes = 0;
async function fillingDisk(file) {
  const fh = await fsp.open(file, 'w');
  const writev = fh.writev.bind(fh);
  fh.writev = async (buffers, position) => {
    if (++writes > failAfterWrites) throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    return writev(buffers, position);
  };
  return fh;
}

function digest(dir) {
  const out = {};
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out[path.relative(dir, file)] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }
  return out;
}

async function keepWriting(dir) {
  const w = new RotatingPartWriter('b', options, new FileService('b', dir), shard, undefined);
  for (let n = 0; n < batches; n++) await w.write(batch(n));
  await w.finish();
}

let abortError = null;
/** Finished parts the aborting writer removed (its abort's removeStale calls). */
const removedByAbort = [];
const aDir = path.join(root, 'aborting');
const bDir = path.join(root, 'beside');
const cleanDir = path.join(root, 'clean');
const aService = mode === 'enospc' ? new FileService('a', aDir, fillingDisk) : new FileService('a', aDir);
const removeStale = aService.removeStale.bind(aService);
aService.removeStale = async (...args) => {
  const removed = await removeStale(...args);
  removedByAbort.push(...removed.filter((f) => !f.endsWith('.tmp')));
  return removed;
};
const a = new RotatingPartWriter('a', options, aService, shard, undefined);
const aborting = (async () => {
  try {
    for (let n = 0; n < batches; n++) {
      await a.write(batch(n));
      if (mode === 'stop' && n === Math.floor(batches / 2)) throw new Error('stopped mid-part');
    }
    await a.finish();
  } catch (err) {
    abortError = err.message;
    // As export_shard does (fan_out.abandon): the writer learns what failed the shard (a full disk takes back its parts).
    await a.abort(err);
  }
})();
await Promise.all([aborting, keepWriting(bDir)]);
await keepWriting(cleanDir);
// Warnings are emitted on a later tick than the close that caused them.
await new Promise((resolve) => setTimeout(resolve, 50));
parentPort.postMessage({ warnings, abortError, removedByAbort, aborted: digest(aDir), beside: digest(bDir), clean: digest(cleanDir) });
