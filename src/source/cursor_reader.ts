import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import { CorruptRowError, RowBatchBuilder, type RowBatch } from './row_batch.js';

/**
 * The simple path: a server-side cursor via pg-query-stream, `fetchSize` rows per round trip.
 * Selects the same (key, µs, body text) columns as the COPY path and yields the same bytes;
 * kept because it works through poolers and proxies that do not pass COPY.
 */
export async function* readWithCursor(client: pg.Client, selectSql: string, fetchSize: number): AsyncGenerator<RowBatch> {
  const stream = client.query(new QueryStream(selectSql, [], { batchSize: fetchSize, rowMode: 'array' }));
  const builder = new RowBatchBuilder(fetchSize);
  try {
    for await (const row of stream as AsyncIterable<[string | null, string, string | null]>) {
      const [key, micros, body] = row;
      if (key === null) throw new CorruptRowError('row with a NULL key: the key column must not be NULL');
      if (body === null) throw new CorruptRowError(`row key=${JSON.stringify(key)}: body is NULL`);
      builder.addStrings(key, Number(micros), body);
      if (builder.full) yield builder.take();
    }
    if (builder.count > 0) yield builder.take();
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
}
