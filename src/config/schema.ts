import os from 'node:os';
import { ConfigError } from './errors.js';
import { OptionReader } from './reader.js';
import { isoDurationMillis } from './units.js';
import { LEVELS, type ColumnMapping, type Config, type Level, type SourceConfig, type StateConfig } from './types.js';
import { parseExporter } from '../sinks/registry.js';

/** The Kestra `logs` table needs no mapping: these are its column names. */
export const KESTRA_COLUMNS: ColumnMapping = {
  timestamp: 'timestamp',
  key: 'key',
  level: 'level',
  namespace: 'namespace',
  tenant: 'tenant_id',
  body: 'value',
  deleted: undefined,
};

function parseColumns(r: OptionReader | undefined): ColumnMapping {
  if (!r) return { ...KESTRA_COLUMNS };
  const col = (key: keyof ColumnMapping, required: boolean): string | null => {
    const v = r.raw(key);
    if (v === undefined) return KESTRA_COLUMNS[key] ?? null;
    if (v === null && !required) return null;
    if (typeof v !== 'string' || v.length === 0) {
      throw new ConfigError(r.at(key), required ? 'must name a column' : 'must name a column, or be null when the table has none');
    }
    return v;
  };
  const columns: ColumnMapping = {
    timestamp: col('timestamp', true)!,
    key: col('key', true)!,
    level: col('level', false),
    namespace: col('namespace', false),
    tenant: col('tenant', false),
    body: col('body', false),
    deleted: r.raw('deleted') === undefined ? undefined : col('deleted', false),
  };
  r.done();
  return columns;
}

function parseSource(r: OptionReader | undefined): SourceConfig {
  const s = r ?? OptionReader.of('source', {});
  const source: SourceConfig = {
    // Fallback order: config, LOGSHIP_SOURCE_URL, then libpq's PG* variables (pg reads those itself).
    url: s.optionalString('url') ?? process.env.LOGSHIP_SOURCE_URL,
    table: s.string('table', 'logs'),
    columns: parseColumns(s.child('columns')),
    stream: s.choice('stream', ['copy', 'cursor'] as const, 'copy'),
    fetchSize: s.integer('fetchSize', 5000, 1, 1_000_000),
    ordered: s.boolean('ordered', false),
  };
  if (source.url !== undefined && !/^postgres(ql)?:\/\//.test(source.url)) {
    throw new ConfigError(s.at('url'), 'must be a postgres:// or postgresql:// URL');
  }
  s.done();
  return source;
}

function parseState(r: OptionReader | undefined): StateConfig {
  if (!r) return { type: 'postgres', table: 'logship_state' };
  const type = r.choice('type', ['postgres', 'file'] as const, 'postgres');
  const state: StateConfig = type === 'file' ? { type, path: r.string('path') } : { type, table: r.string('table', 'logship_state') };
  if (state.type === 'postgres' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(state.table)) {
    throw new ConfigError(r.at('table'), 'must be a plain SQL identifier (letters, digits, underscore)');
  }
  r.done();
  return state;
}

/** PostgreSQL's largest field (1 GB): no row can be larger. */
const MAX_ROW_BYTES = 1024 ** 3;

function parseLateRows(r: OptionReader | undefined): Config['lateRows'] {
  if (!r) return { horizon: 'PT1H' };
  const horizon = r.duration('horizon', 'PT1H');
  if (isoDurationMillis(horizon) === undefined) throw new ConfigError(r.at('horizon'), `must be a duration without years or months, such as PT1H or P1D (got ${JSON.stringify(horizon)})`);
  r.done();
  return { horizon };
}

/** Validates a native logship config (already secret-resolved). */
export function parseConfig(value: unknown): Config {
  const r = OptionReader.of('', value);
  const source = parseSource(r.child('source'));
  const logLevelFilter = r.choice<Level>('logLevelFilter', LEVELS, undefined);
  const lookbackPeriod = r.duration('lookbackPeriod', 'P1D');
  const namespace = r.optionalString('namespace');
  const tenantId = r.optionalString('tenantId');
  const offsetKey = r.string('offsetKey', 'LogShipper-state');
  const del = r.boolean('delete', false);
  const safetyLag = r.duration('safetyLag', 'PT30S');
  const workers = r.integer('workers', Math.max(1, os.availableParallelism()), 1, 256);
  const rowsPerShard = r.integer('rowsPerShard', 1_000_000, 1000);
  const shardAttempts = r.integer('shardAttempts', 3, 1, 20);
  const state = parseState(r.child('state'));
  const badRows = r.choice('badRows', ['deadLetter', 'fail'] as const, 'deadLetter');
  const maxRowBytes = r.byteSize('maxRowBytes', 64 * 1024 ** 2);
  if (maxRowBytes > MAX_ROW_BYTES) throw new ConfigError('maxRowBytes', `must be at most 1GiB, PostgreSQL's largest value (got ${maxRowBytes})`);
  const deadLetter = r.string('deadLetter', './logship-dead-letter');
  const allowDeadLetter = r.boolean('allowDeadLetter', false);
  const lateRows = parseLateRows(r.child('lateRows'));
  const list = r.list('logExporters');
  if (!list || list.length === 0) throw new ConfigError('logExporters', 'must list at least one exporter');
  const ids = new Set<string>();
  const logExporters = list.map((e, i) => parseExporter(`logExporters[${i}]`, e, ids));
  r.done();
  if (del && state.type !== 'postgres') {
    // The delete and the shard's checkpoint must commit in one transaction, or a crash between
    // them would either lose rows (deleted, not recorded) or re-export an emptied range.
    throw new ConfigError('delete', 'requires state.type postgres (the delete and its checkpoint commit in one transaction)');
  }
  if (logLevelFilter && source.columns.level === null) {
    throw new ConfigError('logLevelFilter', 'the source has no level column (source.columns.level is null)');
  }
  if (namespace && source.columns.namespace === null) {
    throw new ConfigError('namespace', 'the source has no namespace column (source.columns.namespace is null)');
  }
  if (tenantId && source.columns.tenant === null) {
    throw new ConfigError('tenantId', 'the source has no tenant column (source.columns.tenant is null)');
  }
  return {
    source, logLevelFilter, lookbackPeriod, namespace, tenantId, offsetKey, delete: del, safetyLag, workers, rowsPerShard, shardAttempts, state,
    badRows, maxRowBytes, deadLetter, allowDeadLetter, lateRows, logExporters,
  };
}
