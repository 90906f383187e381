import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * A shard's dead letters for one exporter, streamed to `{dir}/{exporter}-{shard}.ndjson` as they
 * happen (never held in memory). The file is cut back to the length recorded with the last
 * acknowledged prefix when a shard resumes, so a record is in it exactly once however often the
 * shard is retried; a fresh attempt starts it empty.
 */
export class DeadLetterFile {
  readonly file: string;
  private fd: number | null = null;
  private length: number;
  private unsynced = false;
  count: number;

  constructor(dir: string, exporterId: string, shardId: string, resume: { bytes: number; count: number } | undefined) {
    this.file = path.resolve(dir, `${exporterId}-${shardId}.ndjson`);
    this.length = resume?.bytes ?? 0;
    this.count = resume?.count ?? 0;
    // Synchronous and tiny: a stat and a truncate once per shard, before any request is sent.
    if (fs.existsSync(this.file)) {
      if (fs.statSync(this.file).size !== this.length) fs.truncateSync(this.file, this.length);
    }
  }

  get bytes(): number {
    return this.length;
  }

  append(record: Record<string, unknown>, document: Buffer | string): void {
    // The document goes in as the platform would have received it, unparsed: JSON text when it
    // is JSON, else a JSON string.
    const head = JSON.stringify(record);
    const doc = typeof document === 'string' ? document : document.toString('utf8');
    const line = `${head.slice(0, -1)},"document":${isJsonText(doc) ? doc : JSON.stringify(doc)}}\n`;
    if (this.fd === null) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
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
    await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd!, (err) => (err ? reject(err) : resolve())));
  }

  /** At the shard's end: durable, and no empty file left behind. */
  async finish(): Promise<void> {
    await this.sync();
    this.close();
    if (this.length === 0) await fsp.rm(this.file, { force: true });
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
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
