// `npm run bench:micro`: each pipeline stage alone (tinybench), in MB/s of NDJSON handled.
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { CopyBinaryParser } from '../src/source/copy_reader.js';
import { RowBatchBuilder, type RowBatch } from '../src/source/row_batch.js';
import { jsonEncoder, ndjsonEncoder } from '../src/encode/formats.js';
import { BulkRequestBuilder, parseIndexPattern } from '../src/sinks/elasticsearch/request_builder.js';

const dailyIndex = parseIndexPattern('indexName', 'kestra-logs-{yyyy.MM.dd}');

const ROWS = 20_000;
const levels = ['TRACE', 'DEBUG', 'INFO', 'INFO', 'WARN', 'ERROR'];
function doc(i: number): string {
  return JSON.stringify({
    level: levels[i % levels.length], flowId: `flow_${i % 37}`, taskId: `task_${i % 11}`, thread: `WorkerThread-${i % 16}`,
    message: i % 2 ? `Task started: processed ${i} records in ${i % 977} ms` : `Überprüfung abgeschlossen — état: ok ✓ 日本語のログ ${i}`,
    tenantId: 'main', namespace: 'company.team.backend', taskRunId: `7750ca3559e5b8e1f4${i % 9999}`, timestamp: new Date(1.79e12 + i * 37).toISOString(),
    executionId: `202cb962ac59075b964b${i % 999}`, attemptNumber: 1 + (i % 3),
  });
}

// A COPY (FORMAT binary) stream of (key text, timestamptz, jsonb), as PostgreSQL sends it.
const docs = Array.from({ length: ROWS }, (_, i) => Buffer.from(doc(i)));
const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
for (let i = 0; i < ROWS; i++) {
  const key = Buffer.from(`k${i.toString(36).padStart(21, '0')}`);
  const head = Buffer.alloc(2 + 4);
  head.writeInt16BE(3, 0);
  head.writeInt32BE(key.length, 2);
  const ts = Buffer.alloc(12);
  ts.writeInt32BE(8, 0);
  ts.writeBigInt64BE(BigInt(8.4e14 + i * 37_000), 4); // µs since 2000-01-01
  const bl = Buffer.alloc(5);
  bl.writeInt32BE(docs[i]!.length + 1, 0);
  bl[4] = 1; // jsonb binary version
  parts.push(head, key, ts, bl, docs[i]!);
}
const trailer = Buffer.alloc(2);
trailer.writeInt16BE(-1, 0);
parts.push(trailer);
const copyStream = Buffer.concat(parts);
const ndjsonBytes = docs.reduce((s, d) => s + d.length + 1, 0);
const chunks: Buffer[] = [];
for (let o = 0; o < copyStream.length; o += 65536) chunks.push(copyStream.subarray(o, o + 65536));

function parseAll(fetchSize = 5000): RowBatch[] {
  const p = new CopyBinaryParser(fetchSize);
  const out: RowBatch[] = [];
  for (const c of chunks) out.push(...p.push(c));
  const last = p.end();
  if (last) out.push(last);
  return out;
}
const batches = parseAll();
const ndjson = Buffer.concat(batches.map((b) => ndjsonEncoder.rows(b, 0, b.count, true)));

const require = createRequire(import.meta.url);
let zstd: { compress(b: Buffer, p: Record<string, number>): Buffer } | null = null;
try {
  zstd = require('zstd-napi');
} catch {
  zstd = null;
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
bench
  .add('COPY binary -> RowBatch (fast path parse)', () => void parseAll())
  .add('RowBatch -> NDJSON bytes', () => {
    for (const b of batches) ndjsonEncoder.rows(b, 0, b.count, true);
  })
  .add('RowBatch -> JSON array bytes', () => {
    for (const b of batches) jsonEncoder.rows(b, 0, b.count, true);
  })
  .add('naive: JSON.parse + JSON.stringify per row', () => {
    for (const d of docs) JSON.stringify(JSON.parse(d.toString('utf8')));
  })
  .add('_bulk body building (create + _id)', () => {
    const builder = new BulkRequestBuilder('create', 1000, 5_000_000, dailyIndex);
    for (const b of batches) for (let i = 0; i < b.count; i++) {
      builder.add(b, i);
      if (builder.full) builder.take();
    }
  });
for (const level of [1, 6]) bench.add(`gzip level ${level}`, () => void zlib.gzipSync(ndjson, { level }));
if (zstd) for (const level of [1, 3, 9]) bench.add(`zstd level ${level} (zstd-napi)`, () => void zstd!.compress(ndjson, { compressionLevel: level }));

await bench.run();
const rows = bench.tasks.map((t) => {
  const mean = t.result && 'latency' in t.result ? (t.result as { latency: { mean: number } }).latency.mean : NaN;
  return { stage: t.name, 'MB/s': (ndjsonBytes / 1e6 / (mean / 1000)).toFixed(0), 'rows/s': Math.round(ROWS / (mean / 1000)).toLocaleString('en-US') };
});
console.table(rows);
console.log(`${ROWS.toLocaleString('en-US')} rows, ${(ndjsonBytes / 1e6).toFixed(1)} MB NDJSON per iteration; zstd ${zstd ? 'via zstd-napi' : 'unavailable'}.`);
