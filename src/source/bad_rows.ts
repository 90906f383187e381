import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { microsToTs } from '../core/keyset.js';
import { CorruptRowError } from '../core/errors.js';

/** A row the readers cannot hand to exporters: what it is, and its raw bytes for recovery. */
export interface BadRow {
  /** Raw key bytes; null when the key itself is NULL. */
  key: Buffer | null;
  tsMicros: number;
  reason: string;
  /** Raw document bytes as the source sent them; null when the body is NULL or was not read. */
  raw: Buffer | null;
  /**
   * When the document was not read (a Parquet-only run): each exported field's name and its raw
   * bytes as PostgreSQL sent them (null for SQL NULL), in the Parquet columns' order.
   */
  fields?: [string, Buffer | null][];
}

/**
 * What the readers do with a bad row. Readers call `reject` only on the rare path (a NULL, a
 * batch that failed the UTF-8 check, an oversized row), so the hot path stays a length compare.
 */
export interface BadRowPolicy {
  readonly maxRowBytes: number;
  reject(row: BadRow): void;
}

function base64OrNull(b: Buffer | null): string {
  return b === null ? 'null' : `"${b.toString('base64')}"`;
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
 * A distributed attempt at a shard: its dead-letter file carries the attempt in its name, and is
 * published only after `check` confirmed the attempt still holds the shard (as its parts are).
 */
export interface BadRowFence {
  attempt: number;
  /** Rejects once a newer attempt has claimed the shard or the shard is done. */
  check(): Promise<void>;
}

/**
 * `badRows: deadLetter`: each bad row becomes one NDJSON line (key, timestamp, reason, raw bytes
 * as base64; each field's bytes instead when the document was not read) in a temp file beside
 * the shard's dead-letter file. `commit` fsyncs and renames it into place before the shard is
 * checkpointed, so a shard's rerun replaces its file whole: exactly one line per bad row,
 * whatever attempts came before.
 *
 * In distributed mode two attempts of a shard may run at once (a stalled worker wakes after its
 * job was handed out again), so attempt n writes `bad-rows-{shard}-a{n}.ndjson`: never the name
 * another attempt writes. It renames only after a fence check, removes the files of attempts
 * before it (never a newer one's: that may be the winner), and `abort` takes its own file back.
 */
export class DeadLetterFile implements BadRowPolicy {
  private fd: number | null = null;
  count = 0;
  readonly file: string;
  private readonly temp: string;
  private published = false;

  constructor(
    readonly maxRowBytes: number,
    directory: string,
    private readonly shardId: string,
    private readonly fence?: BadRowFence,
  ) {
    this.file = path.resolve(directory, `bad-rows-${shardId}${fence ? `-a${fence.attempt}` : ''}.ndjson`);
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
    const fields = row.fields === undefined ? '' : `,"fields":{${row.fields.map(([name, v]) => `${JSON.stringify(name)}:${base64OrNull(v)}`).join(',')}}`;
    const line = `${JSON.stringify(head).slice(0, -1)},"raw":${base64OrNull(row.raw)}${fields}}\n`;
    fs.writeSync(this.fd, line);
    this.count++;
  }

  /** Makes the shard's dead-letter file exactly this attempt's (or removes a stale one). */
  async commit(): Promise<void> {
    await this.removeEarlier();
    if (this.fd === null) {
      if (!this.fence) await fs.promises.rm(this.file, { force: true });
      return;
    }
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
    // Asked before the rename: a superseded attempt publishes nothing (its temp goes in abort).
    await this.fence?.check();
    await fs.promises.rename(this.temp, this.file);
    this.published = true;
    const dir = await fs.promises.open(path.dirname(this.file), 'r');
    await dir.sync().finally(() => dir.close());
  }

  /**
   * What a finished attempt replaces: a local run, every other file and temp of this shard (any
   * attempt's); distributed attempt n, the bare name's and those of attempts 1 … n−1.
   */
  private async removeEarlier(): Promise<void> {
    const dir = path.dirname(this.file);
    const own = path.basename(this.temp);
    const shard = this.shardId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const name = new RegExp(`^\\.?bad-rows-${shard}(?:-a(\\d+))?\\.ndjson(\\.\\d+\\.tmp)?$`);
    const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
    const stale = names.filter((n) => {
      const m = name.exec(n);
      // Its own name is replaced by the rename, atomically; its own temp is what it renames.
      if (!m || n === own || n === path.basename(this.file) || (n.startsWith('.') !== (m[2] !== undefined))) return false;
      const attempt = m[1] === undefined ? 0 : Number(m[1]);
      return this.fence ? attempt < this.fence.attempt : true;
    });
    await Promise.all(stale.map((n) => fs.promises.rm(path.join(dir, n), { force: true })));
  }

  /** An attempt that does not finish: its temp goes, and in distributed mode its published file too. */
  async abort(): Promise<void> {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
    await fs.promises.rm(this.temp, { force: true });
    if (this.fence && this.published) await fs.promises.rm(this.file, { force: true });
    this.published = false;
  }
}
