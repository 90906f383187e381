import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import { FailOnBadRow, type BadRowPolicy } from './bad_rows.js';
import { RowBatchBuilder, type RowBatch } from './row_batch.js';

/**
 * The simple path: a server-side cursor via pg-query-stream, `fetchSize` rows per round trip.
 * Selects the same (key, µs, body text) columns as the COPY path and yields the same bytes;
 * kept because it works through poolers and proxies that do not pass COPY.
 */
export async function* readWithCursor(client: pg.Client, selectSql: string, fetchSize: number, o: { badRows?: BadRowPolicy } = {}): AsyncGenerator<RowBatch> {
  const stream = client.query(new QueryStream(selectSql, [], { batchSize: fetchSize, rowMode: 'array' }));
  const badRows = o.badRows ?? new FailOnBadRow();
  const builder = new RowBatchBuilder(fetchSize, undefined, badRows);
  // A UTF-8 string has at most 3 bytes per UTF-16 unit: shorter strings need no byte count.
  const safeLength = Math.floor(badRows.maxRowBytes / 3);
  try {
    for await (const row of stream as AsyncIterable<[string | null, string, string | null]>) {
      const [key, micros, body] = row;
      if (key === null || body === null || (body.length > safeLength && Buffer.byteLength(body) > badRows.maxRowBytes)) {
        const reason = key === null ? 'key is NULL' : body === null ? 'body is NULL' : `body is ${Buffer.byteLength(body)} bytes, over maxRowBytes (${badRows.maxRowBytes})`;
        badRows.reject({ key: key === null ? null : Buffer.from(key), tsMicros: Number(micros), reason, raw: body === null ? null : Buffer.from(body) });
        continue;
      }
      builder.addStrings(key, Number(micros), body);
      if (builder.full) yield builder.take();
    }
    if (builder.count > 0) yield builder.take();
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
}
