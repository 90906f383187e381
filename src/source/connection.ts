import pg from 'pg';
import { ConfigError } from '../config/errors.js';
import { redact } from '../config/secrets.js';
import type { SourceConfig } from '../config/types.js';

/**
 * Opens a session with the settings every logship query relies on: UTC so timestamp text is
 * unambiguous, and a recognisable application_name for the DBA watching pg_stat_activity.
 */
export async function connect(url: string | undefined, role: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: `logship-${role}`,
    connectionTimeoutMillis: 15_000,
  });
  // An idle-connection error would otherwise crash the process as an unhandled 'error' event.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query("SET TimeZone = 'UTC'; SET statement_timeout = 0; SET DateStyle = 'ISO'");
  } catch (err) {
    await client.end().catch(() => {});
    throw new ConfigError('source.url', `cannot connect to ${describeTarget(url)}: ${redact(explain(err))}`);
  }
  return client;
}

export function connectSource(source: SourceConfig, role: string): Promise<pg.Client> {
  return connect(source.url, role);
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
