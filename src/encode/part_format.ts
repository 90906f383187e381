import type { OutputOptions } from '../config/types.js';
import type { SourceTable } from '../source/table.js';
import type { RowBatch } from '../source/row_batch.js';
import { encoderFor } from './formats.js';

/** Pushes encoded bytes to the open part, resolving when it may take more (backpressure). */
export type Push = (bytes: Buffer) => Promise<void>;

/** Encodes the rows of one part (file or object). */
export interface PartEncoder {
  rows(batch: RowBatch, from: number, to: number): Promise<void>;
  /** Writes whatever closes the part (JSON's "]", Parquet's last row group and footer). */
  close(): Promise<void>;
}

export interface PartFormat {
  readonly extension: string;
  readonly contentType: string;
  /** Whether the file-level `compression` applies (Parquet compresses its pages itself). */
  readonly outerCompression: boolean;
  open(push: Push): Promise<PartEncoder>;
}

/** What a part's name says is inside: ndjson, json or parquet (before any compression suffix). */
export function formatExtension(format: OutputOptions['format']): string {
  return format === 'PARQUET' ? 'parquet' : encoderFor(format).extension;
}

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
