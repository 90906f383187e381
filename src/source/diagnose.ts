import { isUtf8 } from 'node:buffer';
import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import type { Bound } from '../core/keyset.js';
import type { SourceConfig } from './options.js';
import { connectSource } from './connection.js';
import { filterConditions, orderBy, rangeConditions, whereClause, type Filters } from './query.js';
import { CorruptRowError } from '../core/errors.js';
import type { SourceTable } from './table.js';

/** PostgreSQL's "invalid byte sequence for encoding": raised when a SQL_ASCII database holds non-UTF-8 bytes. */
export const INVALID_ENCODING = '22021';

/**
 * The server names no row when it refuses to convert bytes to UTF-8. This reads the shard's raw
 * bytes once more, without conversion, to name the first offending row for the error message.
 */
export async function findNonUtf8Row(source: SourceConfig, t: SourceTable, f: Filters, lo: Bound, hi: Bound): Promise<CorruptRowError | null> {
  const client: pg.Client = await connectSource(source, 'diagnose');
  try {
    await client.query("SET client_encoding = 'SQL_ASCII'");
    const sql = `SELECT textsend(${t.key}::text) AS k, textsend((${t.body})::text) AS b FROM ${t.name} t ${whereClause([...filterConditions(t, f), ...rangeConditions(t, lo, hi)])} ${orderBy(t)}`;
    const stream = client.query(new QueryStream(sql, [], { batchSize: 1000 }));
    for await (const row of stream as AsyncIterable<{ k: Buffer; b: Buffer }>) {
      if (!isUtf8(row.b) || !isUtf8(row.k)) {
        stream.destroy();
        return new CorruptRowError(`row key=${JSON.stringify(row.k.toString('latin1'))}: body is not valid UTF-8`);
      }
    }
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}
