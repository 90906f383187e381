import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { microsToTs } from '../plan/keyset.js';
import { CorruptRowError } from './row_batch.js';

/** A row the readers cannot hand to exporters: what it is, and its raw bytes for recovery. */
export interface BadRow {
  /** Raw key bytes; null when the key itself is NULL. */
  key: Buffer | null;
  tsMicros: number;
  reason: string;
  /** Raw document bytes as the source sent them; null when the body is NULL. */
  raw: Buffer | null;
}

/**
 * What the readers do with a bad row. Readers call `reject` only on the rare path (a NULL, a
 * batch that failed the UTF-8 check, an oversized row), so the hot path stays a length compare.
 */
export interface BadRowPolicy {
  readonly maxRowBytes: number;
  reject(row: BadRow): void;
}

export function describeKey(key: Buffer | null): string {
  return key === null ? 'NULL' : JSON.stringify(key.toString('utf8'));
}

/** `badRows: fail`: the shard fails with a message naming the row. */
export class FailOnBadRow implements BadRowPolicy {
  constructor(readonly maxRowBytes = 1024 ** 3) {}

  reject(row: BadRow): never {
    throw new CorruptRowError(`row key=${describeKey(row.key)}: ${row.reason}`);
  }
}

/**
 * `badRows: deadLetter`: each bad row becomes one NDJSON line (key, timestamp, reason, raw bytes
 * as base64) in a temp file beside the shard's dead-letter file. `commit` fsyncs and renames it
 * into place before the shard is checkpointed, so a shard's rerun replaces its file whole:
 * exactly one line per bad row, whatever attempts came before.
 */
export class DeadLetterFile implements BadRowPolicy {
  private fd: number | null = null;
  count = 0;
  readonly file: string;
  private readonly temp: string;

  constructor(
    readonly maxRowBytes: number,
    directory: string,
    shardId: string,
  ) {
    this.file = path.resolve(directory, `bad-rows-${shardId}.ndjson`);
    this.temp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}.tmp`);
  }

  reject(row: BadRow): void {
    if (this.fd === null) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = fs.openSync(this.temp, 'w');
    }
    const keyIsText = row.key !== null && isUtf8(row.key);
    const head = {
      key: row.key === null ? null : row.key.toString('utf8'),
      ...(row.key !== null && !keyIsText ? { keyBase64: row.key.toString('base64') } : {}),
      timestamp: microsToTs(row.tsMicros),
      reason: row.reason,
    };
    const line = `${JSON.stringify(head).slice(0, -1)},"raw":${row.raw === null ? 'null' : `"${row.raw.toString('base64')}"`}}\n`;
    fs.writeSync(this.fd, line);
    this.count++;
  }

  /** Makes the shard's dead-letter file exactly this attempt's (or removes a stale one). */
  async commit(): Promise<void> {
    await this.removeStaleTemps();
    if (this.fd === null) {
      await fs.promises.rm(this.file, { force: true });
      return;
    }
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
    await fs.promises.rename(this.temp, this.file);
    const dir = await fs.promises.open(path.dirname(this.file), 'r');
    await dir.sync().finally(() => dir.close());
  }

  /** Temp files of killed attempts of this shard (other pids). */
  private async removeStaleTemps(): Promise<void> {
    const prefix = `.${path.basename(this.file)}.`;
    const own = path.basename(this.temp);
    const names = await fs.promises.readdir(path.dirname(this.file)).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp') && n !== own).map((n) => fs.promises.rm(path.join(path.dirname(this.file), n), { force: true })));
  }

  async abort(): Promise<void> {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
    await fs.promises.rm(this.temp, { force: true });
  }
}
