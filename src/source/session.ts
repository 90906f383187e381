import type pg from 'pg';
import type { SourceConfig } from './options.js';
import { withRetries, type BackoffPolicy } from '../core/retry.js';
import { connectSource, explainSourceTimeout, isConnectionLoss } from './connection.js';

/** Run-level work on one connection (planning, checkpoints) that survives a source restart. */
export interface Db {
  /** Runs `work` on the connection; `work` must be safe to run again from the start. */
  run<T>(work: (client: pg.Client) => Promise<T>): Promise<T>;
  /** Called on every new connection after a reconnect (re-taking session-level locks, say). */
  onReconnect(hook: (client: pg.Client) => Promise<void>): void;
  /** The connection as it is now, for best-effort work such as releasing a lock at exit. */
  current(): pg.Client;
}

/** A connection that is never replaced: for short commands (`plan`, `state`, `tune`). */
export function fixedDb(client: pg.Client): Db {
  return { run: (work) => work(client), onReconnect: () => {}, current: () => client };
}

/** Reconnects for up to about a minute: long enough for a restart or a managed failover. */
const RECONNECT: BackoffPolicy = { attempts: 10, firstDelayMs: 250, maxDelayMs: 10_000 };

/**
 * The run's main connection. When it is lost (server restart, failover, reset), the work in
 * hand is run again from the start on a new connection; a transaction cut off mid-way was
 * rolled back by the server, and a COMMIT whose answer was lost is harmless to redo because
 * every checkpoint write is idempotent.
 */
export class SourceSession implements Db {
  private broken = false;
  private readonly hooks: ((client: pg.Client) => Promise<void>)[] = [];

  private constructor(
    private readonly source: SourceConfig,
    private readonly role: string,
    private client: pg.Client,
    private readonly policy: BackoffPolicy,
  ) {}

  /** The first connection: failing here is a configuration error. */
  static async open(source: SourceConfig, role: string, policy: BackoffPolicy = RECONNECT): Promise<SourceSession> {
    return new SourceSession(source, role, await connectSource(source, role, { startup: true }), policy);
  }

  current(): pg.Client {
    return this.client;
  }

  onReconnect(hook: (client: pg.Client) => Promise<void>): void {
    this.hooks.push(hook);
  }

  run<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    return withRetries(this.policy, isConnectionLoss, async () => {
      if (this.broken) await this.reconnect();
      try {
        return await work(this.client);
      } catch (err) {
        if (isConnectionLoss(err)) this.broken = true;
        throw explainSourceTimeout(err, this.source);
      }
    });
  }

  async end(): Promise<void> {
    await this.client.end().catch(() => {});
  }

  private async reconnect(): Promise<void> {
    await this.client.end().catch(() => {});
    this.client = await connectSource(this.source, this.role, { startup: false });
    for (const hook of this.hooks) await hook(this.client);
    this.broken = false;
  }
}
