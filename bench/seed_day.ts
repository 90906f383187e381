import pg from 'pg';
import { createKestraSchema, seedKestraLogsParallel } from '../src/demo/seed.js';

/**
 * The benches' data: Kestra's schema and `rows` synthetic log rows over the last 23 hours (inside a
 * P1D lookback, outside the safety lag), seeded over two connections, then analysed for the planner.
 */
export async function seedBenchDay(url: string, rows: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await createKestraSchema(client);
    process.stderr.write(`seeding ${rows.toLocaleString('en-US')} Kestra rows...\n`);
    await seedKestraLogsParallel(url, { rows, start: new Date(Date.now() - 23 * 3600_000 - 120_000).toISOString(), spanSeconds: 23 * 3600, parallel: 2 });
    await client.query('VACUUM ANALYZE logs');
  } finally {
    await client.end();
  }
}
