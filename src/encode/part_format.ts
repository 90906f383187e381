import { PartFormat } from './part_encoder.js';
import type { OutputOptions } from './options.js';
import type { SourceTable } from '../source/table.js';

import { encoderFor } from './formats.js';

/** NDJSON and JSON: the byte encoders, framed per part. */
function textFormat(format: 'NDJSON' | 'JSON'): PartFormat {
  const encoder = encoderFor(format);
  return {
    extension: encoder.extension,
    contentType: encoder.contentType,
    outerCompression: true,
    async open(push) {
      const head = encoder.head();
      if (head) await push(head);
      let first = true;
      return {
        rows(batch, from, to) {
          const bytes = encoder.rows(batch, from, to, first);
          first = false;
          return push(bytes);
        },
        async close() {
          const tail = encoder.tail(first);
          if (tail) await push(tail);
        },
      };
    },
  };
}

export async function partFormatFor(options: OutputOptions, table: SourceTable | undefined): Promise<PartFormat> {
  if (options.format !== 'PARQUET') return textFormat(options.format);
  // Loaded only for Parquet exports.
  const { parquetFormat } = await import('./parquet.js');
  if (!table) throw new Error('PARQUET needs the source table description');
  return parquetFormat(options, table);
}
