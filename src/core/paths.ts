import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The package root, whether code runs compiled (dist/src/…) or as TypeScript under vitest (src/…). */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('logship: cannot find its package root');
    dir = up;
  }
  root = dir;
  return dir;
}

/** The compiled piscina worker; workers always run compiled JavaScript. */
export function workerFile(): string {
  return path.join(packageRoot(), 'dist', 'src', 'shard', 'worker.js');
}
