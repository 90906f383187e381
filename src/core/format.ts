import type { Bound } from './keyset.js';
import { formatCount } from './numbers.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export { formatCount } from './numbers.js';

/** "1 shard", "2 shards", "1,200 rows": a count and its noun, singular only for exactly one. */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${formatCount(n)} ${n === 1 ? noun : nouns}`;
}

export function formatBound(b: Bound | null): string {
  if (!b) return '(none)';
  return b.key === null ? b.ts : `${b.ts} key=${b.key}`;
}
