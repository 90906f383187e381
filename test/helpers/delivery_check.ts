/**
 * Compares what a platform received with the source keys: every key must be there; duplicates
 * are counted (after a kill -9 they are allowed up to the core's bound, never otherwise).
 */
export function compareKeys(sourceKeys: Iterable<string>, receivedKeys: Iterable<string>): { missing: string[]; unexpected: string[]; duplicates: number } {
  const counts = new Map<string, number>();
  for (const k of receivedKeys) counts.set(k, (counts.get(k) ?? 0) + 1);
  const source = new Set(sourceKeys);
  const missing = [...source].filter((k) => !counts.has(k));
  const unexpected = [...counts.keys()].filter((k) => !source.has(k));
  let duplicates = 0;
  for (const n of counts.values()) duplicates += n - 1;
  return { missing, unexpected, duplicates };
}
