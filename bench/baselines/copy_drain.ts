// Baseline: the source ceiling. COPY (SELECT value ...) TO STDOUT drained to nowhere.
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

const [url, where] = process.argv.slice(2) as [string, string];
const started = Date.now();
const client = new pg.Client({ connectionString: url });
await client.connect();
let bytes = 0;
const stream = client.query(copyTo(`COPY (SELECT value FROM logs WHERE ${where}) TO STDOUT`));
for await (const chunk of stream as AsyncIterable<Buffer>) bytes += chunk.length;
await client.end();
const u = process.resourceUsage();
process.stdout.write(`${JSON.stringify({ seconds: (Date.now() - started) / 1000, outBytes: bytes, peakRssBytes: u.maxRSS * 1024, cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6 })}\n`);
