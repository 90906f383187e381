import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { quote } from './options.js';

/** Kernel filesystems where logship can never create its files (a recursive mkdir under /proc
 *  spins instead of failing), by path and by statfs type for bind mounts elsewhere. */
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];
const VIRTUAL_FS_TYPES = new Map<number, string>([[0x9fa0, 'procfs'], [0x62656572, 'sysfs'], [0x1373, 'devfs'], [0x1cd1, 'devpts'], [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2']]);

/** The nearest ancestor of `p` that exists (p itself when it exists), with symlinks resolved. */
function nearestExisting(p: string): string {
  let at = path.resolve(p);
  for (;;) {
    try {
      return fs.realpathSync(at);
    } catch {
      const up = path.dirname(at);
      if (up === at) return at;
      at = up;
    }
  }
}

/** Fails fast, naming the option, when a directory logship must create files in cannot hold them. */
export function checkWritableLocation(option: string, dir: string): void {
  const existing = nearestExisting(dir);
  const root = VIRTUAL_ROOTS.find((r) => existing === r || existing.startsWith(`${r}/`));
  if (root) throw new ConfigError(option, `is under ${root}, a kernel filesystem where files cannot be created (got ${quote(dir)})`);
  let type: number | undefined;
  try {
    type = fs.statfsSync(existing).type;
  } catch {
    return; // not knowing is not a reason to refuse; the run's own checks still apply
  }
  const fsName = VIRTUAL_FS_TYPES.get(type);
  if (fsName) throw new ConfigError(option, `is on ${fsName}, a kernel filesystem where files cannot be created (got ${quote(dir)})`);
  if (existing === path.resolve(dir) && !fs.statSync(existing).isDirectory()) {
    throw new ConfigError(option, `is not a directory (got ${quote(dir)})`);
  }
}

/** A file logship writes (state, report): not a directory, and in a place files can be created. */
export function checkFileLocation(option: string, file: string, exampleName: string): void {
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(file);
  } catch {
    stat = undefined;
  }
  if (stat?.isDirectory()) throw new ConfigError(option, `is a directory; give a file path such as ${quote(path.join(file, exampleName))}`);
  checkWritableLocation(option, path.dirname(path.resolve(file)));
}

/** access(2) as fs.accessSync calls it; tests pass one that fails as a read-only mount does, which they cannot make. */
export type AccessCheck = (file: string, mode: number) => void;

/** Why files cannot be written in `dir` (or in what its creation needs), in words; null when they can. */
export function writeProblem(dir: string, o: { create: boolean } = { create: true }, access: AccessCheck = fs.accessSync): string | null {
  const target = path.resolve(dir);
  const existing = nearestExisting(target);
  if (existing !== target && !o.create) return `directory ${target} does not exist`;
  // Creating a directory needs its nearest existing ancestor to be a writable directory.
  const creating = existing === target ? '' : `cannot create ${target}: `;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(existing);
  } catch (err) {
    return `${creating}cannot look at ${existing} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (!stat.isDirectory()) return `${creating}${existing} is a file, not a directory (ENOTDIR)`;
  try {
    // access(2) answers for this process, root included, and names a read-only mount EROFS.
    access(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return `${creating}${existing} is on a read-only filesystem (EROFS)`;
    if (code === 'EACCES' || code === 'EPERM') return `${creating}${existing} is not writable by this user (${code})`;
    return `${creating}cannot write in ${existing} (${code ?? String(err)})`;
  }
  return null;
}

/**
 * Before a command that writes (run, worker, state --reset): the places it will create files in
 * can take them. Found here, a bad path is one line naming the option, exit 2, before anything is
 * exported, instead of Node's raw error after the export (a report) or at the first part.
 */
export function checkCanWrite(option: string, dir: string, o: { create: boolean } = { create: true }): void {
  const problem = writeProblem(dir, o);
  if (problem) throw new ConfigError(option, problem);
}
