import { expect, it } from 'vitest';
import { freshDatabase } from '../helpers/db.js';

/**
 * Fails on purpose, through the same global setup (embedded PostgreSQL) as the suite. `.ci/run`
 * runs it first (vitest.canary.config.ts) and requires a non-zero exit, so a setup that turns a
 * failed run into exit 0 can never hide failures again. Not part of `npm test`.
 */
it('fails on purpose, after using the suite database', async () => {
  const { client } = await freshDatabase('canary');
  const r = await client.query<{ one: number }>('SELECT 1 AS one');
  await client.end();
  expect(r.rows[0]!.one).toBe(2);
});
