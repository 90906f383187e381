// `npm run bench:pg`: a seeded embedded PostgreSQL to try logship or profile it by hand
// (`npm run bench -- --url URL`, `logship run` with `source.url: URL`). It prints the URL and
// keeps running until Ctrl-C, which stops the server and removes its data directory.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' } } });

async function main(): Promise<void> {
  const rows = Number(values.rows);
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`--rows: must be a non-negative integer (got ${JSON.stringify(values.rows)})`);
  const server = await startEmbeddedPostgres();
  // Ctrl-C / SIGTERM: stop the server ourselves, then exit as a signal-ended process would.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => void server.stop().finally(() => process.exit(code)));
  }
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  await createKestraSchema(client);
  // The same day of synthetic logs as `logship demo` and `npm run bench`.
  const start = new Date(Date.now() - 23 * 3600_000 - 120_000).toISOString();
  if (rows > 0) await seedKestraLogsParallel(server.url, { rows, start, spanSeconds: 23 * 3600, parallel: 2 });
  await client.query('VACUUM ANALYZE logs');
  await client.end();
  process.stdout.write(`${server.url}\n`);
  process.stderr.write(`seeded ${rows.toLocaleString('en-US')} Kestra rows into table logs; Ctrl-C stops the server\n`);
  // The server is a child process, which keeps this process alive until a signal ends it.
}

main().catch((err: unknown) => {
  process.stderr.write(`seeded_pg: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
