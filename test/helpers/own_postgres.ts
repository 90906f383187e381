import { afterAll, beforeAll } from 'vitest';
import pg from 'pg';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/demo/embedded_pg.js';

/**
 * A PostgreSQL of the calling test file's own, started before its tests and stopped after them,
 * for tests that restart the server: the suite's shared one must not be restarted under other
 * files. `connect` opens an admin session in UTC.
 */
export function ownPostgres(): { server: () => RunningPostgres; connect: () => Promise<pg.Client> } {
  let server: RunningPostgres | undefined;
  beforeAll(async () => {
    server = await startEmbeddedPostgres();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });
  const running = () => {
    if (!server) throw new Error('ownPostgres: the server is not started yet (call it at the top of the file)');
    return server;
  };
  return {
    server: running,
    async connect() {
      const c = new pg.Client({ connectionString: running().url });
      c.on('error', () => {});
      await c.connect();
      await c.query("SET TimeZone = 'UTC'");
      return c;
    },
  };
}
