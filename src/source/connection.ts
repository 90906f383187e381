import pg from 'pg';
import { registerSecret, redact } from '../config/secrets.js';
import type { SourceConfig } from '../config/types.js';
import { KindedError } from '../run/error_kind.js';

/**
 * Opens a session with the settings every logship query relies on: UTC so timestamp text is
 * unambiguous, and a recognisable application_name for the DBA watching pg_stat_activity.
 * Any failure to get a session is 'source-unavailable' (exit 4 at startup, retried mid-run): a
 * refused connection, DNS, a timeout, a full server, and also a rejected password, which is as
 * often a rotation in progress as a typo, and which no edit of the config file validates.
 */
export async function connect(url: string | undefined, role: string, password?: string): Promise<pg.Client> {
  const client = new pg.Client({
    ...connectionTarget(url, password),
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
    throw new KindedError('source-unavailable', `source.url: cannot connect to ${describeTarget(url)}: ${redact(explain(err))}`);
  }
  return client;
}

export function connectSource(source: SourceConfig, role: string): Promise<pg.Client> {
  return connect(source.url, role, source.password);
}

/**
 * `source.password` goes into the URL percent-encoded (pg's URL parser would let the URL's empty
 * password override a separate one), or alone when the PG* variables name the server.
 */
function connectionTarget(url: string | undefined, password: string | undefined): pg.ClientConfig {
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
