import pg from 'pg';
import { redact } from '../core/secrets.js';
import type { SourceConfig } from './options.js';
import { KindedError } from '../core/errors.js';
import { sourceStream } from './read_buffer_socket.js';
import { explainTlsError, openClient, pgTarget, type PgTarget } from './tls.js';

/**
 * The source could not be reached after the run had started (a restart, a failover, a reset):
 * transient, so the shard or checkpoint is retried over a new connection.
 */
export class SourceUnavailableError extends Error {
  override readonly name = 'SourceUnavailableError';
  /** Its kind crosses the worker-thread boundary (core/errors.ts): retried, exit 4 if it persists. */
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

/** What a source session is set up with; the defaults apply to hand-built configs. */
export type SessionSettings = Partial<Pick<SourceConfig, 'password' | 'applicationName' | 'statementTimeoutMs' | 'lockTimeoutMs'>>;

/**
 * logship takes locks only to delete exported rows (`delete: true`) and on its state tables,
 * whose CREATE/ALTER TABLE IF NOT EXISTS wait behind any open transaction on them and, while
 * waiting, make every later reader of the table wait too. 10 s is far above a healthy wait and
 * ends a stuck one with a clear error (the shard is retried) instead of a silent hang.
 */
export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

/** PostgreSQL truncates application_name at 63 bytes (NAMEDATALEN - 1). */
const APPLICATION_NAME_BYTES = 63;

/**
 * `logship:<offsetKey>:<role>` (role: main, worker, coordinator, plan, state...), so a DBA can tell
 * which export and which part of it a session belongs to. When that is over 63 bytes the role is
 * dropped and the rest is cut, on a character boundary, rather than PostgreSQL cutting the role
 * in half.
 */
export function applicationName(prefix: string | undefined, role: string): string {
  const full = `${prefix ?? 'logship'}:${role}`;
  if (Buffer.byteLength(full) <= APPLICATION_NAME_BYTES) return full;
  let cut = prefix ?? 'logship';
  while (Buffer.byteLength(cut) > APPLICATION_NAME_BYTES) cut = cut.slice(0, -1);
  // slice() may have split a surrogate pair: drop a lone high surrogate left at the end.
  return cut.replace(/[\uD800-\uDBFF]$/, '');
}

/** The source database as pg's client config, TLS as libpq does it (tls.ts); its messages name source.url. */
export function sourceTarget(source: Pick<SourceConfig, 'url' | 'password'>): PgTarget {
  return pgTarget({ url: source.url, password: source.password, option: 'source.url' });
}

/**
 * Opens a session with the settings every logship query relies on: UTC so timestamp text is
 * unambiguous, the configured timeouts, and a recognisable application_name for the DBA watching
 * pg_stat_activity. TLS follows libpq's sslmode (tls.ts); a TLS setting that cannot work (a missing
 * certificate file) is a configuration error, exit 2. Any other failure to get a session is
 * 'source-unavailable' (exit 4 at startup, retried mid-run): a refused connection, DNS, a timeout,
 * a full server, a certificate that does not verify, and also a rejected password, which is as
 * often a rotation in progress as a typo, and which no edit of the config file validates.
 */
export async function connect(url: string | undefined, role: string, options: ConnectOptions = { startup: true }, settings: SessionSettings = {}): Promise<pg.Client> {
  const target = sourceTarget({ url, password: settings.password });
  let client: pg.Client | undefined;
  try {
    client = (await openClient(target, { application_name: applicationName(settings.applicationName, role), connectionTimeoutMillis: 15_000, stream: sourceStream })).client;
    // statement_timeout 0 unless configured: a shard's COPY is one statement, and a long one is
    // legitimate (see source.statementTimeout).
    const statementMs = Math.round(settings.statementTimeoutMs ?? 0);
    const lockMs = Math.round(settings.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
    await client.query(`SET TimeZone = 'UTC'; SET statement_timeout = ${statementMs}; SET lock_timeout = ${lockMs}; SET DateStyle = 'ISO'`);
  } catch (err) {
    await client?.end().catch(() => {});
    const message = `cannot connect to ${describeTarget(url)}: ${redact(explainTlsError(err, target) ?? explain(err))}${url === undefined ? NO_URL_HINT : ''}`;
    if (options.startup) throw new KindedError('source-unavailable', `source.url: ${message}`);
    throw new SourceUnavailableError(`source ${message}`, { cause: err });
  }
  return client;
}

export function connectSource(source: SourceConfig, role: string, options?: ConnectOptions): Promise<pg.Client> {
  return connect(source.url, role, options, source);
}

/**
 * A statement or lock timeout from the source, in words naming the option to change; other
 * errors are returned as they are. Keeps the SQLSTATE, so retries and kinds are unchanged.
 */
export function explainSourceTimeout(err: unknown, source: Pick<SourceConfig, 'statementTimeoutMs' | 'lockTimeoutMs'>): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: string };
  if (e.code !== '57014' && e.code !== '55P03') return err;
  if (e.code === '57014' && /statement timeout/i.test(e.message)) {
    const ms = source.statementTimeoutMs ?? 0;
    return Object.assign(new Error(`source: a query ran longer than source.statementTimeout (${ms / 1000} s) and was cancelled by PostgreSQL; raise source.statementTimeout (0 = no limit) or make shards smaller (rowsPerShard)`, { cause: err }), { code: e.code });
  }
  if (e.code === '55P03' && /lock timeout/i.test(e.message)) {
    const ms = source.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    return Object.assign(new Error(`source: waited longer than source.lockTimeout (${ms / 1000} s) for a lock (another transaction holds rows or the state table logship needs); find it in pg_locks, or raise source.lockTimeout`, { cause: err }), { code: e.code });
  }
  return err;
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
 * A pasted Kestra flow has no database settings: with no URL anywhere, libpq's defaults send it to
 * localhost:5432, and the error must say where a URL goes rather than only where it went.
 */
const NO_URL_HINT = '; no source URL is set: give one in LOGSHIP_SOURCE_URL (a Kestra flow has no database settings) or in source.url, e.g. postgres://USER@HOST:5432/kestra';

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
