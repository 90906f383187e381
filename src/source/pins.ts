import type pg from 'pg';
import { escapeLiteral } from 'pg';

/**
 * Index pins: conditions that change no query's row set but let PostgreSQL read a time range
 * through an index that does not lead with the timestamp, such as Kestra's
 * (tenant_id, "timestamp", level) and (tenant_id, namespace, "timestamp", level).
 *
 * A range on the timestamp alone can only walk such an index whole, or scan the table: the cost
 * grows with the table, not the window. With `tenant_id = ANY(<every tenant present>) OR
 * tenant_id IS NULL` the same range becomes one index range per tenant.
 *
 * The tenants present are found by a loose index scan (a recursive CTE hopping from one distinct
 * value to the next: a few index pages per tenant) written INSIDE the query it pins, never passed
 * in from an earlier query. A statement's subqueries read in the statement's snapshot (in a
 * REPEATABLE READ transaction, the transaction's), so every row the query can see has its tenant
 * in the list: the pin is a tautology for that query, however tenants come and go, and a tenant
 * whose first row lands inside the window is read like any other. A list taken once per run and
 * handed to the shards would not be: a shard's snapshot is newer than the list, its new tenant's
 * rows would be skipped and, being visible to that snapshot, never count as late either. The
 * price is those few index pages per statement.
 */

/** Which pins a table's indexes allow (see pinnedBy); both false for a table no pin helps. */
export interface IndexPins {
  /** Reads pin the tenant column: an index leads with it and none leads with the timestamp. */
  tenant: boolean;
  /** A namespace filter also pins the namespace: an index leads with (tenant, namespace). */
  namespace: boolean;
}

interface LeadingColumns { first: string | null; second: string | null }

/**
 * The pins worth adding. Only where no index leads with the timestamp: there a plain range is
 * already an index range, and a table whose indexes the pins do not fit keeps the planner-cost
 * reasoning of shardReads (its CREATE INDEX hint included).
 */
export async function pinnedBy(client: pg.Client, oid: string, columns: { ts: string; tenant: string | null; namespace: string | null }): Promise<IndexPins> {
  if (columns.tenant === null) return { tenant: false, namespace: false };
  // Valid, non-partial btree indexes and their first two key columns (NULL for an expression).
  const r = await client.query<LeadingColumns>(
    `SELECT a0.attname AS first, a1.attname AS second
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_am am ON am.oid = ic.relam
       LEFT JOIN pg_attribute a0 ON a0.attrelid = i.indrelid AND a0.attnum = i.indkey[0] AND i.indkey[0] > 0
       LEFT JOIN pg_attribute a1 ON a1.attrelid = i.indrelid AND a1.attnum = i.indkey[1] AND i.indkey[1] > 0 AND i.indnkeyatts > 1
      WHERE i.indrelid = $1::oid AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'`,
    [oid],
  );
  if (r.rows.some((x) => x.first === columns.ts)) return { tenant: false, namespace: false };
  const tenantLed = r.rows.filter((x) => x.first === columns.tenant);
  return {
    tenant: tenantLed.length > 0,
    namespace: columns.namespace !== null && tenantLed.some((x) => x.second === columns.namespace),
  };
}

/** Table, tenant and namespace as the query builders hold them: `t.`-qualified, quoted. */
interface PinTable { name: string; tenant: string | null; namespace: string | null }

/**
 * The distinct non-NULL values of `column` where `where` holds, by a loose index scan: an SQL
 * array. Each hop is one index descent, `ORDER BY … LIMIT 1` in the index's own order (`order`,
 * ending with `column`): the planner sees that order under `tenant = 'x'` but not under
 * `tenant IS NULL`, where min() walked every NULL-tenant entry instead.
 */
function distinctValues(t: PinTable, column: string, where: string | null, order = column): string {
  const and = where === null ? '' : ` AND ${where}`;
  const first = (after: string) => `(SELECT ${column} FROM ${t.name} t WHERE ${column} ${after}${and} ORDER BY ${order} LIMIT 1)`;
  return `ARRAY(WITH RECURSIVE logship_v(v) AS (SELECT ${first('IS NOT NULL')}`
    + ` UNION ALL SELECT ${first('> logship_v.v')} FROM logship_v WHERE logship_v.v IS NOT NULL)`
    + ' SELECT v FROM logship_v WHERE v IS NOT NULL)';
}

/** The tenant pin: true of every row (see the module comment). */
export function tenantPin(t: PinTable): string {
  return `(${t.tenant} = ANY(${distinctValues(t, t.tenant!, null)}) OR ${t.tenant} IS NULL)`;
}

/**
 * The namespace filter's pin: `namespace = ANY(<the namespaces present that match the filter>)`.
 * Under the tenant pin (or a configured tenant) that is one index range of (tenant, namespace,
 * timestamp) per tenant and namespace. The list is every distinct namespace, by a loose scan of
 * the (tenant, namespace) prefix, filtered by the filter's own exact test (`matches`, on `v`):
 * no range on namespace text is used to find them, because under the database's collation
 * (Kestra's columns use its default) 'X.' .. 'X/' need not hold exactly the names that start with
 * 'X.'. Equality is exact under any deterministic collation. The exact filter stays in the query too.
 */
export function namespacePin(t: PinTable, tenantId: string | undefined, matches: (v: string) => string): string {
  const ns = t.namespace!;
  const tenant = t.tenant!;
  const keep = matches('v');
  if (tenantId !== undefined) {
    // One tenant: hop through its namespaces.
    const list = distinctValues(t, ns, `${tenant} = ${escapeLiteral(tenantId)}`);
    return `${ns} = ANY(ARRAY(SELECT v FROM unnest(${list}) v WHERE ${keep}))`;
  }
  // Every tenant: hop through the distinct (tenant, namespace) pairs in index order (row
  // comparison is an index condition; NULL tenants sort last and no row comparison reaches them),
  // then through the NULL tenant's namespaces. NULL namespaces match no filter and are skipped:
  // a NULL inside the row comparison could end btree's scan early, and with it the walk.
  const pairs = `WITH RECURSIVE logship_p(tn, v) AS ((SELECT ${tenant}, ${ns} FROM ${t.name} t WHERE ${tenant} IS NOT NULL AND ${ns} IS NOT NULL ORDER BY 1, 2 LIMIT 1)`
    + ` UNION ALL SELECT n.tn, n.v FROM logship_p CROSS JOIN LATERAL (SELECT ${tenant} AS tn, ${ns} AS v FROM ${t.name} t`
    + ` WHERE (${tenant}, ${ns}) > (logship_p.tn, logship_p.v) AND ${ns} IS NOT NULL ORDER BY 1, 2 LIMIT 1) n) SELECT v FROM logship_p`;
  const nullTenant = distinctValues(t, ns, `${tenant} IS NULL`, `${tenant}, ${ns}`);
  return `${ns} = ANY(ARRAY(SELECT DISTINCT v FROM (${pairs} UNION ALL SELECT unnest(${nullTenant})) a(v) WHERE ${keep}))`;
}
