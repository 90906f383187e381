import { escapeLiteral } from 'pg';
import { LEVELS, type Level } from './options.js';
import type { Bound } from '../core/keyset.js';
import { namespacePin, tenantPin } from './pins.js';
import type { LevelCompare, SourceTable } from './table.js';

export interface Filters {
  logLevelFilter: Level | undefined;
  namespace: string | undefined;
  tenantId: string | undefined;
  /** Audit logs: resources to keep (every spelling), on the table's resource column. */
  resources?: string[] | undefined;
}

/** Levels at or above the minimum. Lower-case spellings are included for hand-made tables. */
export function levelsAtLeast(min: Level): string[] {
  const kept = LEVELS.slice(LEVELS.indexOf(min));
  return [...kept, ...kept.map((l) => l.toLowerCase())];
}

/** The rows at or above `min`. The same rows whichever way, but only a comparison on the column itself lets the planner estimate them. */
function levelCondition(level: string, compare: LevelCompare | undefined, min: Level): string {
  const wanted = levelsAtLeast(min);
  if (compare?.kind === 'enum') {
    const labels = compare.labels.filter((l) => wanted.includes(l));
    return labels.length > 0 ? `${level} IN (${labels.map(escapeLiteral).join(', ')})` : 'false';
  }
  return `${compare?.kind === 'text' ? level : `${level}::text`} IN (${wanted.map(escapeLiteral).join(', ')})`;
}

export function filterConditions(t: SourceTable, f: Filters): string[] {
  const where: string[] = [];
  if (t.deleted) where.push(`${t.deleted} IS NOT TRUE`);
  if (f.tenantId !== undefined && t.tenant) where.push(`${t.tenant} = ${escapeLiteral(f.tenantId)}`);
  else if (t.pins?.tenant) where.push(tenantPin(t));
  if (f.namespace !== undefined && t.namespace) {
    // "company.team" means itself and its children; "_" and "%" in names are literal.
    const like = `${f.namespace.replace(/[!%_]/g, '!$&')}.%`;
    const matches = (v: string) => `(${v} = ${escapeLiteral(f.namespace!)} OR ${v} LIKE ${escapeLiteral(like)} ESCAPE '!')`;
    where.push(matches(t.namespace));
    if (t.pins?.namespace && t.tenant) where.push(namespacePin(t, f.tenantId, matches));
  }
  if (f.resources !== undefined && t.resource) where.push(`${t.resource}::text IN (${f.resources.map(escapeLiteral).join(', ')})`);
  if (f.logLevelFilter !== undefined && t.level) where.push(levelCondition(t.level, t.levelCompare, f.logLevelFilter));
  return where;
}

function tsLiteral(b: Bound): string {
  return `${escapeLiteral(b.ts)}::timestamptz`;
}

/**
 * Conditions for lo <= (ts, key) < hi. The plain timestamp comparisons are redundant with the
 * row comparisons but let PostgreSQL use a timestamp index for the range.
 */
export function rangeConditions(t: SourceTable, lo: Bound | null, hi: Bound | null): string[] {
  const where: string[] = [];
  if (lo) {
    where.push(`${t.ts} >= ${tsLiteral(lo)}`);
    if (lo.key !== null) where.push(`(${t.ts}, ${t.keyOrdered}) >= (${tsLiteral(lo)}, ${escapeLiteral(lo.key)}::${t.keyType})`);
  }
  if (hi) {
    if (hi.key === null) where.push(`${t.ts} < ${tsLiteral(hi)}`);
    else {
      where.push(`${t.ts} <= ${tsLiteral(hi)}`);
      where.push(`(${t.ts}, ${t.keyOrdered}) < (${tsLiteral(hi)}, ${escapeLiteral(hi.key)}::${t.keyType})`);
    }
  }
  return where;
}

/**
 * The rows strictly after row `b` in (timestamp, key) order: where a read that renewed its
 * snapshot goes on. Used with rangeConditions({ ts: b.ts, key: null }, hi), whose plain
 * timestamp bound serves an index.
 */
export function afterRow(t: SourceTable, b: Bound & { key: string }): string {
  return `(${t.ts}, ${t.keyOrdered}) > (${tsLiteral(b)}, ${escapeLiteral(b.key)}::${t.keyType})`;
}

export function whereClause(conditions: string[]): string {
  return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
}

export function orderBy(t: SourceTable): string {
  return `ORDER BY ${t.ts}, ${t.keyOrdered}`;
}

/**
 * Every reader selects (key, event time, document), in that order. For COPY (binary) they go raw
 * so PostgreSQL does no conversion work: text key bytes, timestamp as int64 µs since 2000-01-01,
 * jsonb as a version byte plus its text. The cursor path gets text: µs since 1970 and jsonb text.
 * Unordered by default: shards are already time ranges, and sorting each one costs PostgreSQL
 * about a quarter of the export time (see the README's Performance section).
 * `wire`: text expressions selected after the document (COPY only; see RowBatch.wire).
 * `withoutDocument` (COPY with wire columns that cover every exported value): the document's
 * place holds '' or, when the document is NULL, NULL, so PostgreSQL never turns it into text.
 * `late` (COPY only; see lateCheckSql): the same scan also selects the rows of earlier ranges that
 * may be late, and a last int column tells them apart: -1 for the shard's own rows, the range's
 * index for a late row (sent without its document), NULL for a row that is neither.
 */
export interface SelectOptions {
  ordered: boolean;
  mode: 'copy' | 'cursor';
  /** Conditions beyond the range (a late catch-up's rows, a renewed read's start). */
  extra?: string[];
  wire?: string[];
  withoutDocument?: boolean;
  late?: { conditions: string[]; tree: string };
}

export function shardSelect(t: SourceTable, f: Filters, lo: Bound, hi: Bound, o: SelectOptions): string {
  const { ordered, mode, extra = [], wire = [], withoutDocument = false, late } = o;
  const document = withoutDocument ? `CASE WHEN ${t.bodyNull} THEN NULL ELSE ''::text END` : t.body;
  const order = ordered ? ` ${orderBy(t)}` : '';
  if (mode === 'cursor') {
    return `SELECT ${t.key}::text, (extract(epoch from ${t.ts}) * 1000000)::int8, (${t.body})::text FROM ${t.name} t ${whereClause([...filterConditions(t, f), ...rangeConditions(t, lo, hi), ...extra])}${order}`;
  }
  if (!late) return `SELECT ${[`${t.keyText}, ${t.ts}, ${document}`, ...wire].join(', ')} FROM ${t.name} t ${whereClause([...filterConditions(t, f), ...rangeConditions(t, lo, hi), ...extra])}${order}`;
  const own = `(${[...rangeConditions(t, lo, hi), ...extra].join(' AND ')})`;
  const columns = [`${t.keyText}, ${t.ts}, CASE WHEN ${own} THEN ${document} END`, ...wire, `CASE WHEN ${own} THEN -1 ELSE ${late.tree} END`];
  // Filters first: both branches share them (the late conditions repeat them, harmlessly).
  return `SELECT ${columns.join(', ')} FROM ${t.name} t ${whereClause([...filterConditions(t, f), `(${own} OR (${late.conditions.join(' AND ')}))`])}${order}`;
}

/** `extra`: the same additional conditions the shard was read with (a late catch-up's). */
export function shardDelete(t: SourceTable, f: Filters, lo: Bound, hi: Bound, extra: string[] = []): string {
  return `DELETE FROM ${t.name} t ${whereClause([...filterConditions(t, f), ...rangeConditions(t, lo, hi), ...extra])}`;
}

/** The rows with these keys (a key lookup, so an index on the key serves it). */
export function keyIn(t: SourceTable, keys: string[]): string {
  return `${t.key} = ANY(ARRAY[${keys.map(escapeLiteral).join(', ')}]::${t.keyType}[])`;
}
