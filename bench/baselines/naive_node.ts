// Baseline: what a user writes in a few lines of Node. pg-query-stream -> JSON.stringify per row
// -> zlib gzip -> file. Run in its own process by bench/run.ts; prints one JSON line.
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import pg from 'pg';
import QueryStream from 'pg-query-stream';

const [url, where, out] = process.argv.slice(2) as [string, string, string];
const started = Date.now();
const client = new pg.Client({ connectionString: url });
await client.connect();
let rows = 0;
const stream = client.query(new QueryStream(`SELECT value FROM logs WHERE ${where}`, [], { batchSize: 1000 }));
const toLines = new Transform({
  writableObjectMode: true,
  transform(row: { value: unknown }, _enc, cb) {
    rows++;
    cb(null, `${JSON.stringify(row.value)}\n`);
  },
});
await pipeline(stream, toLines, zlib.createGzip({ level: 1 }), fs.createWriteStream(out));
await client.end();
const u = process.resourceUsage();
process.stdout.write(`${JSON.stringify({ rows, seconds: (Date.now() - started) / 1000, outBytes: fs.statSync(out).size, peakRssBytes: u.maxRSS * 1024, cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6 })}\n`);
