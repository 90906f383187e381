import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RunError } from '../../core/errors.js';
import { writeProblem } from '../../core/fs_checks.js';
import type { ObjectService, PartUpload } from '../types.js';
import { FileHandleSink } from './handle_sink.js';

const TEMP_SUFFIX = '.tmp';
/** Flush written data to disk in the background every this many bytes, so the fsync before the
 *  rename (which the checkpoint waits for) has little left to do. */
const SYNC_EVERY = 32 * 1024 * 1024;

/** Opens a part's temp file for writing. Tests wrap it to give the errors a full disk gives. */
export type OpenPartFile = (file: string) => Promise<fsp.FileHandle>;

const openForWriting: OpenPartFile = (file) => fsp.open(file, 'w');

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
    private readonly openFile: OpenPartFile = openForWriting,
  ) {
    this.label = `file exporter '${exporterId}' (${root})`;
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.access(this.root, fs.constants.W_OK);
    } catch (err) {
      // mkdir -p says ENOENT where a read-only filesystem is the cause: name the real one.
      const cause = writeProblem(this.root) ?? (err as NodeJS.ErrnoException).code ?? String(err);
      throw new RunError(`logExporters '${this.exporterId}': directory ${this.root} is not writable: ${cause}`);
    }
  }

  /** The path of a name, refused if it resolves outside the root (config checks names; this is the last line). */
  private inside(name: string): string {
    const full = path.resolve(this.root, name);
    const rel = path.relative(path.resolve(this.root), full);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new RunError(`${this.label}: refusing ${JSON.stringify(name)}, which is outside the output directory`, { code: 'permanent' });
    }
    return full;
  }

  async open(name: string): Promise<PartUpload> {
    const final = this.inside(name);
    const dir = path.dirname(final);
    const temp = path.join(dir, `.${path.basename(final)}.${process.pid}${TEMP_SUFFIX}`);
    await fsp.mkdir(dir, { recursive: true });
    let fh: fsp.FileHandle;
    try {
      fh = await this.openFile(temp);
    } catch (err) {
      throw new RunError(`${this.label}: cannot create ${final}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    // The handle is this part's alone to sync and close, once: in commit or in abort. The sink
    // writes through it and never closes it (see FileHandleSink).
    const sink = new FileHandleSink(fh, 1024 * 1024);
    let synced = 0;
    let syncing: Promise<void> | null = null;
    const backgroundSync = () => {
      if (syncing || sink.bytesWritten - synced < SYNC_EVERY) return;
      const upTo = sink.bytesWritten;
      syncing = fh.datasync().then(() => {
        synced = upTo;
      }, () => {}).finally(() => {
        syncing = null;
      });
    };
    sink.on('drain', backgroundSync);
    return {
      sink,
      finalMeta() {},
      async commit() {
        // The pipeline has finished writing; make the bytes and then the name durable before
        // the shard may be checkpointed.
        await syncing;
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
        await syncing;
        await fh.close().catch(() => {});
        await fsp.rm(temp, { force: true });
      },
    };
  }

  async removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]> {
    const removed: string[] = [];
    // Only ever list and delete inside the root, whatever the prefixes say.
    const dirs = new Set(prefixes.map((p) => path.dirname(this.inside(p))));
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
