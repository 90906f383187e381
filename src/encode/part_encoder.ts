import type { OutputOptions } from './options.js';

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
