import fsp from 'node:fs/promises';
import path from 'node:path';
import { RunError } from '../core/errors.js';
import type { Bound } from '../core/keyset.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import type { ReadRange, RunManifest, ShardOutcome, StateStore, StoredState, StateJson } from './types.js';

type Entry = StateJson;

interface FileShape { version: 1; entries: Record<string, Entry> }

/**
 * State in a JSON file, for sources where logship may not create tables. Every change rewrites
 * the file through a temp file, fsync and rename, so a crash leaves the old or the new state.
 */
export class FileStateStore implements StateStore {
  readonly label: string;
  private readonly lockPath: string;
  private locked = false;

  constructor(
    private readonly file: string,
    private readonly offsetKey: string,
  ) {
    this.label = `state file ${file}`;
    this.lockPath = `${file}.${encodeURIComponent(offsetKey)}.lock`;
  }

  async open(): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fsp.writeFile(this.lockPath, String(process.pid), { flag: 'wx' });
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(await fsp.readFile(this.lockPath, 'utf8').catch(() => 'NaN'));
        if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
          throw new RunError(`offsetKey '${this.offsetKey}': another logship run (pid ${pid}) holds ${this.lockPath}`);
        }
        // The holder died (kill -9): its lock is stale.
        await fsp.rm(this.lockPath, { force: true });
      }
    }
    throw new RunError(`offsetKey '${this.offsetKey}': cannot take lock ${this.lockPath}`);
  }

  async load(): Promise<StoredState> {
    const e = (await this.read()).entries[this.offsetKey];
    return {
      offset: e?.offset ?? null,
      run: e?.run ?? null,
      done: new Map(Object.entries(e?.done ?? {}).map(([k, v]) => [Number(k), v])),
      acks: new Map(Object.entries(e?.acks ?? {}).map(([k, v]) => [Number(k), v])),
      reads: e?.reads ?? [],
      updatedAt: e?.updatedAt ?? null,
    };
  }

  beginRun(run: RunManifest): Promise<void> {
    return this.update((e) => {
      e.run = run;
      e.done = {};
      delete e.acks;
    });
  }

  shardDone(_runId: string, index: number, outcome: ShardOutcome, offset: Bound): Promise<void> {
    return this.update((e) => {
      e.done[String(index)] = outcome;
      e.offset = offset;
    });
  }

  saveAck(_runId: string, index: number, exporterId: string, ack: InShardAck): Promise<void> {
    return this.update((e) => {
      e.acks ??= {};
      e.acks[String(index)] = { ...e.acks[String(index)], [exporterId]: ack };
    });
  }

  endRun(_runId: string, offset: Bound, reads: ReadRange[]): Promise<void> {
    return this.update((e) => {
      e.offset = offset;
      e.reads = reads;
      e.run = null;
      e.done = {};
      delete e.acks;
    });
  }

  async reset(): Promise<void> {
    const data = await this.read();
    delete data.entries[this.offsetKey];
    await this.write(data);
  }

  async close(): Promise<void> {
    if (this.locked) await fsp.rm(this.lockPath, { force: true });
    this.locked = false;
  }

  private async update(fn: (e: Entry) => void): Promise<void> {
    const data = await this.read();
    const e = data.entries[this.offsetKey] ?? { offset: null, run: null, done: {}, updatedAt: '' };
    fn(e);
    e.updatedAt = new Date().toISOString();
    data.entries[this.offsetKey] = e;
    await this.write(data);
  }

  private async read(): Promise<FileShape> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, entries: {} };
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as FileShape;
      if (parsed.version !== 1 || typeof parsed.entries !== 'object') throw new Error('unknown layout');
      return parsed;
    } catch (err) {
      throw new RunError(`state.path: ${this.file} is not a logship state file (${(err as Error).message}); move it away or fix it`);
    }
  }

  private async write(data: FileShape): Promise<void> {
    const temp = `${this.file}.${process.pid}.tmp`;
    const fh = await fsp.open(temp, 'w');
    try {
      await fh.writeFile(JSON.stringify(data, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(temp, this.file);
    const dir = await fsp.open(path.dirname(this.file), 'r');
    await dir.sync().finally(() => dir.close());
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
