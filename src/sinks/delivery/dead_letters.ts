import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** Where a shard's dead-letter file resumes: the acknowledged length, and whose file holds it. */
export interface DeadLetterResume {
  bytes: number;
  count: number;
  /** The distributed attempt whose file holds the acknowledged bytes; absent: the local (bare) file. */
  attempt?: number;
}

/**
 * A shard's dead letters for one exporter, streamed to `{dir}/{exporter}-{shard}.ndjson` as they
 * happen (never held in memory). The file is cut back to the length recorded with the last
 * acknowledged prefix when a shard resumes, so a record is in it exactly once however often the
 * shard is retried; a fresh attempt starts it empty.
 *
 * In distributed mode two attempts of a shard may run at once (a stalled worker wakes after its
 * job was handed out again), so attempt n writes `{exporter}-{shard}-a{n}.ndjson`, a name no other
 * attempt writes. An attempt resuming from an ack another attempt (or a local run) stored copies
 * that file's acknowledged prefix into its own: the other file may still be appended to by its
 * stale writer, and stays until this attempt's own ack names this file. At the end, the attempt
 * removes the files of earlier attempts (a local run: every attempt's), never a newer one's; an
 * attempt that does not finish cuts its file back to what its own acks may name, or removes it.
 */
export class DeadLetterFile {
  readonly file: string;
  private fd: number | null = null;
  /** An fdatasync in flight: the descriptor may not be closed under it (its number could be reused meanwhile). */
  private syncing: Promise<void> | null = null;
  private length: number;
  private unsynced = false;
  /** Created by this writer: its directory entry is synced once, before the first ack naming it. */
  private created = false;
  /** The length a stored ack may name in this file: what this attempt offered last, or a local resume. */
  private keep: number;
  /** Copied from another attempt's file: that file stays needed until an ack names this one. */
  readonly carried: boolean;
  count: number;

  constructor(
    dir: string,
    private readonly exporterId: string,
    private readonly shardId: string,
    resume: DeadLetterResume | undefined,
    readonly attempt?: number,
  ) {
    this.file = path.resolve(dir, fileName(exporterId, shardId, attempt));
    this.length = resume?.bytes ?? 0;
    this.count = resume?.count ?? 0;
    const source = path.resolve(dir, fileName(exporterId, shardId, resume?.attempt));
    this.carried = this.length > 0 && source !== this.file;
    this.keep = this.carried ? 0 : this.length;
    // Synchronous and small: a stat and a truncate (or one copy) once per shard, before any request is sent.
    if (this.carried) this.carryFrom(source);
    else if (fs.existsSync(this.file)) {
      if (fs.statSync(this.file).size !== this.length) fs.truncateSync(this.file, this.length);
    }
  }

  get bytes(): number {
    return this.length;
  }

  private carryFrom(source: string): void {
    const size = fs.existsSync(source) ? fs.statSync(source).size : -1;
    if (size < this.length) {
      throw new Error(`dead-letter file ${source} ${size < 0 ? 'is missing' : `holds ${size} bytes`}, but its acknowledged prefix is ${this.length} bytes; cannot resume shard ${this.shardId} of '${this.exporterId}'`);
    }
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.copyFileSync(source, this.file);
    this.fd = fs.openSync(this.file, 'r+');
    fs.ftruncateSync(this.fd, this.length);
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
    this.created = true;
    this.unsynced = true;
  }

  append(record: Record<string, unknown>, document: Buffer | string): void {
    // The document goes in as the platform would have received it, unparsed: JSON text when it
    // is JSON, else a JSON string.
    const head = JSON.stringify(record);
    const doc = typeof document === 'string' ? document : document.toString('utf8');
    const line = `${head.slice(0, -1)},"document":${isJsonText(doc) ? doc : JSON.stringify(doc)}}\n`;
    if (this.fd === null) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.created = !fs.existsSync(this.file);
      this.fd = fs.openSync(this.file, 'a');
    }
    const buf = Buffer.from(line);
    fs.writeSync(this.fd, buf);
    this.length += buf.length;
    this.count++;
    this.unsynced = true;
  }

  /** Makes what was appended durable; called before the prefix that includes it is acknowledged. */
  async sync(): Promise<void> {
    if (this.fd === null || !this.unsynced) return;
    this.unsynced = false;
    const fd = this.fd;
    this.syncing = new Promise<void>((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    try {
      await this.syncing;
    } finally {
      this.syncing = null;
    }
    if (this.created) {
      // A new file's name must survive a crash as its bytes do: an ack is about to name it.
      this.created = false;
      const d = await fsp.open(path.dirname(this.file), 'r');
      await d.sync().finally(() => d.close());
    }
  }

  /** Called (after `sync`) as an ack naming this file's current length is sent. */
  offered(): void {
    this.keep = this.length;
  }

  /** True once this writer offered an ack naming its own file. */
  get acknowledgedOwn(): boolean {
    return this.keep > 0 || !this.carried;
  }

  /**
   * At the shard's end: durable, no empty file left behind, and the files of the attempts this one
   * replaces removed (distributed attempt n: the local file and attempts 1 … n−1; a local run: every
   * attempt's). Called only once no stored ack can name those files any more.
   */
  async finish(): Promise<void> {
    await this.sync();
    await this.close();
    if (this.length === 0) await fsp.rm(this.file, { force: true });
    const dir = path.dirname(this.file);
    const own = path.basename(this.file);
    const name = new RegExp(`^${escape(`${this.exporterId}-${this.shardId}`)}(?:-a(\\d+))?\\.ndjson$`);
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const replaced = names.filter((n) => {
      const m = name.exec(n);
      if (!m || n === own) return false;
      const attempt = m[1] === undefined ? 0 : Number(m[1]);
      return this.attempt === undefined ? attempt > 0 : attempt < this.attempt;
    });
    await Promise.all(replaced.map((n) => fsp.rm(path.join(dir, n), { force: true })));
  }

  /**
   * An attempt that does not finish: its file is cut back to the length its last ack offered (a
   * stored ack may name it: a newer attempt copies that prefix), or removed when no ack of its own
   * can name it. Through the descriptor, so a file the winner already removed is not brought back.
   */
  async abort(): Promise<void> {
    await this.syncing?.catch(() => {});
    if (this.fd !== null) {
      if (this.keep > 0) fs.ftruncateSync(this.fd, this.keep);
      await this.close();
    }
    if (this.keep === 0) await fsp.rm(this.file, { force: true });
  }

  /** Closes the descriptor once, after any fdatasync still running on it. */
  async close(): Promise<void> {
    await this.syncing?.catch(() => {});
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) fs.closeSync(fd);
  }
}

/** `{exporter}-{shard}.ndjson`, or `{exporter}-{shard}-a{n}.ndjson` for distributed attempt n. */
export function fileName(exporterId: string, shardId: string, attempt: number | undefined): string {
  return `${exporterId}-${shardId}${attempt === undefined ? '' : `-a${attempt}`}.ndjson`;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function isJsonText(s: string): boolean {
  const c = s.charCodeAt(0);
  if (c !== 0x7b && c !== 0x5b) return false; // { or [
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}
