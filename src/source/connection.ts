import pg from 'pg';
import { registerSecret, redact } from '../config/secrets.js';
import type { SourceConfig } from '../config/types.js';
import { KindedError } from '../run/error_kind.js';
import { sourceStream } from './read_buffer_socket.js';

/**
 * The source could not be reached after the run had started (a restart, a failover, a reset):
 * transient, so the shard or checkpoint is retried over a new connection.
 */
export class SourceUnavailableError extends Error {
  override readonly name = 'SourceUnavailableError';
  /** Its kind crosses the worker-thread boundary (error_kind.ts): retried, exit 4 if it persists. */
  readonly code = 'source-unavailable';
}

export interface ConnectOptions {
  /**
   * At startup a failure to connect ends the run at once with exit 4 (source unavailable: a
   * scheduler retries later). Later, the same failure means the server went away meanwhile:
   * SourceUnavailableError, and the shard is retried over a new connection.
   */
  startup: boolean;
}

/**
 * Opens a session with the settings every logship query relies on: UTC so timestamp text is
 * unambiguous, and a recognisable application_name for the DBA watching pg_stat_activity.
 * Any failure to get a session is 'source-unavailable' (exit 4 at startup, retried mid-run): a
 * refused connection, DNS, a timeout, a full server, and also a rejected password, which is as
 * often a rotation in progress as a typo, and which no edit of the config file validates.
 */
export async function connect(url: string | undefined, role: string, options: ConnectOptions = { startup: true }, password?: string): Promise<pg.Client> {
  const client = new pg.Client({
    ...connectionTarget(url, password),
    application_name: `logship-${role}`,
    connectionTimeoutMillis: 15_000,
    stream: sourceStream,
  });
  // An idle-connection error would otherwise crash the process as an unhandled 'error' event.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query("SET TimeZone = 'UTC'; SET statement_timeout = 0; SET DateStyle = 'ISO'");
  } catch (err) {
    await client.end().catch(() => {});
    const message = `cannot connect to ${describeTarget(url)}: ${redact(explain(err))}`;
    if (options.startup) throw new KindedError('source-unavailable', `source.url: ${message}`);
    throw new SourceUnavailableError(`source ${message}`, { cause: err });
  }
  return client;
}

export function connectSource(source: SourceConfig, role: string, options?: ConnectOptions): Promise<pg.Client> {
  return connect(source.url, role, options, source.password);
}

/**
 * Whether an error means the connection to the source was lost or refused, as opposed to a
 * problem with the query: socket errors, the server shutting down (57P01 admin_shutdown,
 * 57P02 crash_shutdown, 57P03 cannot_connect_now) and SQLSTATE class 08 (connection exception).
 */
export function isConnectionLoss(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string; errors?: unknown[] } | null;
  if (!e) return false;
  if (e.name === 'SourceUnavailableError') return true;
  const code = e.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', '57P01', '57P02', '57P03'].includes(code)) return true;
  if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  if (Array.isArray(e.errors) && e.errors.some(isConnectionLoss)) return true;
  // node-postgres reports a socket closed under it without a code.
  return /Connection terminated|not queryable|connection error|terminating connection/i.test(e.message ?? '');
}

/**
 * `source.password` goes into the URL percent-encoded (pg's URL parser would let the URL's empty
 * password override a separate one), or alone when the PG* variables name the server.
 */
export function connectionTarget(url: string | undefined, password: string | undefined): pg.ClientConfig {
  if (password === undefined) return { connectionString: url };
  if (url === undefined) return { password };
  const u = new URL(url);
  const encoded = encodeURIComponent(password);
  registerSecret(encoded);
  u.password = encoded;
  return { connectionString: u.toString() };
}

function describeTarget(url: string | undefined): string {
  if (!url) return `PostgreSQL from PG* environment (host ${process.env.PGHOST ?? 'localhost'}, port ${process.env.PGPORT ?? '5432'})`;
  try {
    const u = new URL(url);
    return `postgres://${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'the configured source URL';
  }
}

function explain(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { errors?: Error[] };
  if (e?.code === 'ECONNREFUSED' || e?.errors?.some((x) => (x as NodeJS.ErrnoException).code === 'ECONNREFUSED')) return 'connection refused (is the server running and the port right?)';
  if (e?.code === 'ENOTFOUND') return 'host name not found';
  return e?.message || String(err);
}

/**
 * In a SQL_ASCII database PostgreSQL refuses to send a UTF8 client any byte that is not UTF-8,
 * and names no row: planning and reading fail on one bad key or body. With client_encoding
 * SQL_ASCII as well, bytes pass as stored and logship checks them itself (isUtf8 on each batch;
 * the rows that fail are bad rows). Other server encodings are left alone: they convert.
 */
export async function passRawBytesFromSqlAscii(client: pg.Client): Promise<void> {
  await client.query(`SELECT CASE WHEN current_setting('server_encoding') = 'SQL_ASCII' THEN set_config('client_encoding', 'SQL_ASCII', false) END`);
}
