import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RunError } from '../../config/errors.js';
import type { ObjectService, PartUpload } from '../types.js';

const TEMP_SUFFIX = '.tmp';

/**
 * Local files. A part is written to a hidden temp file beside its final name, fsynced, then
 * renamed: readers never see a half-written file, and after a crash only temp files remain,
 * which the shard's next attempt deletes.
 */
export class FileService implements ObjectService {
  readonly label: string;

  constructor(
    private readonly exporterId: string,
    private readonly root: string,
  ) {
    this.label = `file exporter '${exporterId}' (${root})`;
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.access(this.root, fs.constants.W_OK);
    } catch (err) {
      throw new RunError(`logExporters '${this.exporterId}': directory ${this.root} is not writable (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
  }

  async open(name: string): Promise<PartUpload> {
    const final = path.join(this.root, name);
    const dir = path.dirname(final);
    const temp = path.join(dir, `.${path.basename(final)}.${process.pid}${TEMP_SUFFIX}`);
    await fsp.mkdir(dir, { recursive: true });
    const sink = fs.createWriteStream(temp, { highWaterMark: 1024 * 1024 });
    // Surface EACCES/ENOSPC-at-open here, naming the file, rather than mid-pipeline.
    await new Promise<void>((resolve, reject) => {
      sink.once('ready', resolve);
      sink.once('error', (err) => reject(new RunError(`${this.label}: cannot create ${final}: ${(err as NodeJS.ErrnoException).code ?? err}`)));
    });
    return {
      sink,
      finalMeta() {},
      async commit() {
        // The pipeline has closed the file; make its bytes and then its name durable before
        // the shard may be checkpointed.
        const fh = await fsp.open(temp, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fsp.rename(temp, final);
        await syncDir(dir);
      },
      async abort() {
        sink.destroy();
        await fsp.rm(temp, { force: true });
      },
    };
  }

  async removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]> {
    const removed: string[] = [];
    const dirs = new Set(prefixes.map((p) => path.dirname(path.join(this.root, p))));
    for (const dir of dirs) {
      let entries: string[];
      try {
        entries = await fsp.readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const entry of entries) {
        const logical = logicalName(entry);
        const rel = path.relative(this.root, path.join(dir, logical)).split(path.sep).join('/');
        if (!pattern.test(rel) || (keep.has(rel) && logical === entry)) continue;
        await fsp.rm(path.join(dir, entry), { force: true });
        removed.push(path.relative(this.root, path.join(dir, entry)));
      }
      if (removed.length) await syncDir(dir);
    }
    return removed;
  }
}

/** ".name.ndjson.gz.1234.tmp" → "name.ndjson.gz" */
function logicalName(entry: string): string {
  if (!entry.startsWith('.') || !entry.endsWith(TEMP_SUFFIX)) return entry;
  const inner = entry.slice(1, -TEMP_SUFFIX.length);
  return inner.replace(/\.\d+$/, '');
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
