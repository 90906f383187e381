import type pg from 'pg';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { ConfigError } from '../core/errors.js';
import { quote } from '../core/options.js';
import type { SourceConfig } from './options.js';
import { pinnedBy, type IndexPins } from './pins.js';

/** One Parquet column and where its value comes from in a row. */
export interface ParquetColumn {
  name: string;
  kind: 'string' | 'json' | 'int32' | 'int64' | 'double' | 'boolean' | 'timestamp';
  from: 'key' | 'ts' | 'field' | 'document';
  /** Top-level field of the document, for from = 'field'. */
  field?: string;
  required?: boolean;
  /**
   * For a field: an SQL expression giving its value as text, which the COPY reader selects after
   * the document (RowBatch.wire) when a Parquet exporter runs, so the document is not parsed.
   */
  sql?: string;
}

/** Kestra's log document as columns (timestamp and key come from the row, exact to the µs). */
const KESTRA_PARQUET: ParquetColumn[] = [
  { name: 'timestamp', kind: 'timestamp', from: 'ts', required: true },
  ...['level', 'tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId'].map((f): ParquetColumn => ({ name: f, kind: 'string', from: 'field', field: f })),
  { name: 'attemptNumber', kind: 'int32', from: 'field', field: 'attemptNumber' },
  ...['triggerId', 'thread', 'message', 'executionKind'].map((f): ParquetColumn => ({ name: f, kind: 'string', from: 'field', field: f })),
  { name: 'key', kind: 'string', from: 'key', required: true },
];

/** For bench/parquet_writers.ts, which encodes Kestra rows without a database. */
export const KESTRA_PARQUET_FOR_BENCH = KESTRA_PARQUET;

/**
 * A mapped table's column as text that parses to what `to_jsonb(row)` would have given it, or
 * undefined when only the document has it right (json, arrays, char(n)'s padding, DateStyle-
 * dependent dates and times…). Timestamps go as µs since the epoch.
 */
function wireSql(column: string, pgType: string, kind: ParquetColumn['kind']): string | undefined {
  const t = pgType.replace(/\(.*\)/, '');
  const c = `t.${escapeIdentifier(column)}`;
  if (kind === 'timestamp') return `CASE WHEN isfinite(${c}) THEN (extract(epoch from ${c}) * 1000000)::int8::text END`;
  if (kind === 'int32' || kind === 'int64' || kind === 'double' || kind === 'boolean') return `${c}::text`;
  if (kind === 'string' && ['text', 'character varying', 'name', 'citext'].includes(t)) return `${c}::text`;
  return undefined;
}

function parquetKind(pgType: string): ParquetColumn['kind'] {
  const t = pgType.replace(/\(.*\)/, '').replace(/\[\]$/, '[]');
  if (t.endsWith('[]')) return 'json';
  if (t === 'smallint' || t === 'integer') return 'int32';
  if (t === 'bigint') return 'int64';
  if (t === 'real' || t === 'double precision' || t === 'numeric') return 'double';
  if (t === 'boolean') return 'boolean';
  if (t.startsWith('timestamp')) return 'timestamp';
  if (t === 'json' || t === 'jsonb') return 'json';
  return 'string';
}

/** What the planner and readers need to know about the source table, as ready SQL fragments. */
export interface SourceTable {
  /** Quoted, schema-qualified name. */
  name: string;
  ts: string;
  key: string;
  /** Key compared byte-wise (COLLATE "C") when it is text, so ordering never depends on the locale. */
  keyOrdered: string;
  /** Postgres type of the key, to cast bound literals back. */
  keyType: string;
  level: string | null;
  /**
   * How the level filter compares (see levelCondition in query.ts). Absent: as text, through a
   * cast, which hides the column from PostgreSQL's statistics.
   */
  levelCompare?: LevelCompare;
  namespace: string | null;
  tenant: string | null;
  resource: string | null;
  deleted: string | null;
  /** Expression yielding the exported document: jsonb, or json text when `bodyIsJsonb` is false. */
  body: string;
  bodyIsJsonb: boolean;
  /**
   * SQL boolean: the row's document is NULL. Selected instead of the document when no exporter
   * needs it (Parquet only, see shardSelect), so a NULL body is still a bad row; `false` when
   * the whole row is the document.
   */
  bodyNull: string;
  /** The key as text: the bare column when it already is text (so COPY sends its bytes as is). */
  keyText: string;
  /** Columns a Parquet file gets: Kestra's fields, the table's own columns, or key/time/document. */
  parquet: ParquetColumn[];
  /** Conditions the reads add so an index not led by the timestamp serves a time range (see pins.ts). */
  pins: IndexPins;
}

interface ColumnInfo { name: string; type: string; category: string; typid: string }

/**
 * 'enum': an enum's labels, compared as themselves; 'text': a text or varchar column. Either way
 * the filter is on the column itself, so the planner estimates it from the column's statistics
 * (with `level::text IN (…)` it guessed ~3% of rows for Kestra's INFO-and-above, which is ~70%).
 * 'cast': any other type, compared as text.
 */
export type LevelCompare = { kind: 'enum'; labels: string[] } | { kind: 'text' } | { kind: 'cast' };

async function levelCompareOf(client: pg.Client, c: ColumnInfo | null): Promise<LevelCompare | undefined> {
  if (!c) return undefined;
  if (c.category === 'E') {
    const r = await client.query<{ label: string }>('SELECT enumlabel AS label FROM pg_enum WHERE enumtypid = $1::oid ORDER BY enumsortorder', [c.typid]);
    return { kind: 'enum', labels: r.rows.map((x) => x.label) };
  }
  return ['text', 'character varying'].includes(c.type.replace(/\(.*\)$/, '')) ? { kind: 'text' } : { kind: 'cast' };
}

const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);

/**
 * `source.table` is an SQL name: unquoted, PostgreSQL folds it to lower case, so `MyLogs` or
 * `my logs` is "not found" although the table exists. Say how to quote it.
 */
async function quotingHint(client: pg.Client, name: string): Promise<string> {
  if (!/[A-Z\s"]/.test(name)) return '';
  const dot = name.indexOf('.');
  const [schema, rel] = dot > 0 && name.indexOf('.', dot + 1) < 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [null, name];
  const r = await client.query<{ quoted: string; nspname: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS quoted, n.nspname
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      ORDER BY n.nspname = 'public' DESC LIMIT 1`,
    [rel, schema],
  ).catch(() => ({ rows: [] as { quoted: string; nspname: string }[] }));
  const hit = r.rows[0];
  if (hit) return ` (unquoted names are folded to lower case; to use the existing table write table: '${hit.quoted}')`;
  return ' (unquoted names are folded to lower case; quote mixed-case or spaced names, e.g. table: \'"MyLogs"\')';
}

/** The whole row is the document: one column per table column, typed from PostgreSQL. */
function mappedParquet(cols: ColumnInfo[]): ParquetColumn[] {
  const columns = cols.map((c): ParquetColumn => {
    const kind = parquetKind(c.type);
    return { name: c.name, kind, from: 'field', field: c.name, sql: wireSql(c.name, c.type, kind) };
  });
  // Wire columns only pay when no column needs the parsed document anyway.
  if (columns.some((c) => c.sql === undefined)) for (const c of columns) delete c.sql;
  return columns;
}

export async function describeTable(client: pg.Client, source: SourceConfig): Promise<SourceTable> {
  const rel = await client.query<{ oid: string | null; qualified: string | null }>(
    `SELECT c.oid::text AS oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = to_regclass($1)`,
    [source.table],
  ).catch(() => ({ rows: [] as { oid: string | null; qualified: string | null }[] }));
  const found = rel.rows[0];
  if (!found?.oid) throw new ConfigError('source.table', `table ${quote(source.table)} not found in the source database${await quotingHint(client, source.table)}`);

  const cols = await client.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typcategory AS category, a.atttypid::text AS typid
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [found.oid],
  );
  const byName = new Map(cols.rows.map((c) => [c.name, c]));
  const available = cols.rows.map((c) => c.name).join(', ');
  const need = (option: string, name: string): ColumnInfo => {
    const c = byName.get(name);
    if (!c) throw new ConfigError(`source.columns.${option}`, `column ${JSON.stringify(name)} not found in ${found.qualified} (columns: ${available})`);
    return c;
  };
  const optional = (option: string, name: string | null): ColumnInfo | null => (name === null ? null : need(option, name));

  const { columns } = source;
  const ts = need('timestamp', columns.timestamp);
  if (!ts.type.startsWith('timestamp')) {
    throw new ConfigError('source.columns.timestamp', `column ${JSON.stringify(ts.name)} is ${ts.type}; it must be timestamp or timestamptz`);
  }
  const key = need('key', columns.key);
  const level = optional('level', columns.level);
  const namespace = optional('namespace', columns.namespace);
  const tenant = optional('tenant', columns.tenant);
  const resource = optional('resource', columns.resource);
  const body = optional('body', columns.body);
  let deleted: ColumnInfo | null = null;
  if (columns.deleted === undefined) {
    const d = byName.get('deleted');
    // Older Kestra installs soft-delete with a generated `deleted` flag.
    if (d && d.type === 'boolean') deleted = d;
  } else {
    deleted = optional('deleted', columns.deleted);
    if (deleted && deleted.type !== 'boolean') throw new ConfigError('source.columns.deleted', `column ${JSON.stringify(deleted.name)} is ${deleted.type}; it must be boolean`);
  }

  const q = escapeIdentifier;
  // The Kestra table: its JSON document carries Kestra's log fields.
  const isKestra = body?.name === 'value' && body.type === 'jsonb' && byName.has('flow_id') && byName.has('execution_id');
  const keyIsText = TEXT_TYPES.has(key.type.replace(/\(.*\)$/, ''));
  let bodyExpr: string;
  if (!body) bodyExpr = 'to_jsonb(t)';
  else if (body.type === 'jsonb') bodyExpr = `t.${q(body.name)}`;
  // json goes out as written, never through jsonb: a valid \u0000 escape cannot be cast to jsonb.
  // Raw CR/LF in valid JSON can only be whitespace between tokens (inside strings they must be
  // escaped), so turning them into spaces keeps one document per line and changes no value.
  else if (body.type === 'json') bodyExpr = `translate(t.${q(body.name)}::text, E'\\n\\r', '  ')`;
  else bodyExpr = `to_jsonb(t.${q(body.name)})`;

  const pins = await pinnedBy(client, found.oid, { ts: ts.name, tenant: tenant?.name ?? null, namespace: namespace?.name ?? null });
  return {
    name: found.qualified!,
    ts: `t.${q(ts.name)}`,
    key: `t.${q(key.name)}`,
    keyOrdered: keyIsText ? `t.${q(key.name)} COLLATE "C"` : `t.${q(key.name)}`,
    keyType: key.type,
    level: level && `t.${q(level.name)}`,
    levelCompare: await levelCompareOf(client, level),
    namespace: namespace && `t.${q(namespace.name)}`,
    tenant: tenant && `t.${q(tenant.name)}`,
    resource: resource && `t.${q(resource.name)}`,
    deleted: deleted && `t.${q(deleted.name)}`,
    body: bodyExpr,
    bodyIsJsonb: body?.type !== 'json',
    bodyNull: body ? `t.${q(body.name)} IS NULL` : 'false',
    keyText: keyIsText ? `t.${q(key.name)}` : `t.${q(key.name)}::text`,
    parquet: isKestra
      // Kestra's fields as text from its jsonb document: `->>` gives a string's value, another
      // value's JSON text, and NULL for JSON null or a missing field, as the document path did.
      ? KESTRA_PARQUET.map((c) => (c.from === 'field' ? { ...c, sql: `t.${q(body!.name)}->>${escapeLiteral(c.field!)}` } : c))
      : body
        ? [{ name: 'key', kind: 'string', from: 'key', required: true }, { name: 'timestamp', kind: 'timestamp', from: 'ts', required: true }, { name: body.name, kind: 'json', from: 'document' }]
        : mappedParquet(cols.rows),
    pins,
  };
}
