import type pg from 'pg';
import { KindedError } from '../core/errors.js';

interface Limits {
  rolsuper: boolean;
  rolconnlimit: number;
  datconnlimit: number;
  max_conn: number;
  reserved: number;
  role_used: number;
  db_used: number;
  total_used: number;
}

/**
 * How many more sessions logship may open beside the one it holds, and the tightest limit:
 * the role's rolconnlimit, the database's datconnlimit and the server's max_connections (minus
 * the superuser reserve). Each worker opens one session, so without this a role limited to
 * fewer than workers + 1 fails mid-run with "too many connections".
 */
export async function freeConnections(client: pg.Client): Promise<{ free: number; limit: string } | null> {
  const r = await client.query<Limits>(`
    SELECT r.rolsuper, r.rolconnlimit, d.datconnlimit,
           current_setting('max_connections')::int AS max_conn,
           current_setting('superuser_reserved_connections')::int AS reserved,
           (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user)::int AS role_used,
           (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::int AS db_used,
           (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS total_used
      FROM pg_roles r, pg_database d
     WHERE r.rolname = current_user AND d.datname = current_database()`);
  const l = r.rows[0];
  if (!l) return null;
  const candidates: { free: number; limit: string }[] = [];
  // Superusers are exempt from the role and database limits and may use the reserved slots.
  if (!l.rolsuper && l.rolconnlimit >= 0) candidates.push({ free: l.rolconnlimit - l.role_used, limit: `the role's connection limit (rolconnlimit ${l.rolconnlimit}, ${l.role_used} in use)` });
  if (!l.rolsuper && l.datconnlimit >= 0) candidates.push({ free: l.datconnlimit - l.db_used, limit: `the database's connection limit (datconnlimit ${l.datconnlimit}, ${l.db_used} in use)` });
  const serverMax = l.rolsuper ? l.max_conn : l.max_conn - l.reserved;
  candidates.push({ free: serverMax - l.total_used, limit: `the server's max_connections (${l.max_conn}${l.rolsuper ? '' : `, ${l.reserved} reserved for superusers`}, ${l.total_used} in use)` });
  return candidates.reduce((a, b) => (b.free < a.free ? b : a));
}

/** The workers a run can actually have (`budget` from freeConnections): `wanted`, or fewer (with a warning) when sessions are short. */
export function affordableWorkers(budget: { free: number; limit: string } | null, wanted: number, warn: (message: string) => void): number {
  if (!budget || budget.free >= wanted) return wanted;
  if (budget.free < 1) {
    throw new KindedError('source-unavailable', `source: no session left for a worker: ${budget.limit}`);
  }
  warn(`workers capped from ${wanted} to ${budget.free} by ${budget.limit}; each worker needs one session besides logship's own`);
  return budget.free;
}
