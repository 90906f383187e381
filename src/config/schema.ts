import { ConfigError } from '../core/errors.js';
import { OptionReader } from '../core/options.js';
import { isoDurationMillis, isoDurationRangeMillis, parseIsoDuration } from '../core/options.js';
import { LEVELS, type ColumnMapping, type Level, type SourceConfig } from '../source/options.js';
import { type Config } from '../shard/config.js';
import { resolveWorkers } from './workers.js';
import { parseExporter } from '../sinks/registry.js';
import { AUDIT_COLUMNS, parseResources } from './audit.js';
import { parseState } from './state_config.js';
import { parseQueue } from './queue_config.js';

/** The Kestra `logs` table needs no mapping: these are its column names. */
export const KESTRA_COLUMNS: ColumnMapping = {
  timestamp: 'timestamp',
  key: 'key',
  level: 'level',
  namespace: 'namespace',
  tenant: 'tenant_id',
  body: 'value',
  deleted: undefined,
  resource: null,
};

function parseColumns(r: OptionReader | undefined, defaults: ColumnMapping): ColumnMapping {
  if (!r) return { ...defaults };
  const col = (key: keyof ColumnMapping, required: boolean): string | null => {
    const v = r.raw(key);
    if (v === undefined) return defaults[key] ?? null;
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
    resource: col('resource', false),
  };
  r.done();
  return columns;
}

function parseSource(r: OptionReader | undefined, kind: Config['kind']): SourceConfig {
  const s = r ?? OptionReader.of('source', {});
  const audit = kind === 'audit';
  const source: SourceConfig = {
    // Fallback order: config, LOGSHIP_SOURCE_URL, then libpq's PG* variables (pg reads those itself).
    url: s.optionalString('url') ?? process.env.LOGSHIP_SOURCE_URL,
    password: s.optionalString('password'),
    table: s.string('table', audit ? 'audit_logs' : 'logs'),
    columns: parseColumns(s.child('columns'), audit ? AUDIT_COLUMNS : KESTRA_COLUMNS),
    stream: s.choice('stream', ['copy', 'cursor'] as const, 'copy'),
    fetchSize: s.integer('fetchSize', 5000, 1, 1_000_000),
    ordered: s.boolean('ordered', false),
    // Off by default: a shard's COPY is one statement, and hours are legitimate for a big shard.
    statementTimeoutMs: sessionTimeout(s, 'statementTimeout', 'PT0S'),
    // On by default: logship's lock waits are short when healthy (see DEFAULT_LOCK_TIMEOUT_MS).
    lockTimeoutMs: sessionTimeout(s, 'lockTimeout', 'PT10S'),
    // A long REPEATABLE READ holds back VACUUM everywhere in the database (Kestra's queue tables).
    maxSnapshotAgeMs: durationMillis(s.at('maxSnapshotAge'), s.duration('maxSnapshotAge', 'PT10M'), 'such as PT10M, or PT0S for no limit'),
    maxSnapshotAgeSet: s.raw('maxSnapshotAge') !== undefined && s.raw('maxSnapshotAge') !== null,
  };
  if (source.url !== undefined) checkSourceUrl(s, source.url, source.password !== undefined);
  s.done();
  return source;
}

/** PostgreSQL's timeouts are int milliseconds. */
const MAX_SESSION_TIMEOUT_MS = 2_147_483_647;

/** statement_timeout / lock_timeout: a fixed-length duration PostgreSQL can hold; PT0S = no limit. */
function sessionTimeout(s: OptionReader, key: string, fallback: string): number {
  const iso = s.duration(key, fallback);
  const ms = isoDurationMillis(iso);
  if (ms === undefined || ms > MAX_SESSION_TIMEOUT_MS) {
    throw new ConfigError(s.at(key), `must be a fixed-length duration of at most 24 days, or PT0S for no limit (got ${JSON.stringify(iso)})`);
  }
  return Math.round(ms);
}

/** Milliseconds of a duration that must have a fixed length (no years or months). */
function durationMillis(path: string, iso: string, example?: string): number {
  const ms = isoDurationMillis(iso);
  if (ms === undefined) throw new ConfigError(path, `must be a fixed-length duration, without years or months${example ? ` (${example})` : ''} (got ${JSON.stringify(iso)})`);
  return ms;
}

/** maxDuration from the config or --max-duration: a budget that leaves room past stopGrace. */
export function checkMaxDuration(path: string, value: unknown, stopGraceMs: number): number {
  const ms = durationMillis(path, parseIsoDuration(path, value));
  if (ms <= stopGraceMs) throw new ConfigError(path, `must be longer than stopGrace (${stopGraceMs / 1000} s) (got ${JSON.stringify(value)})`);
  return ms;
}

/**
 * A password with `/`, `#`, `?` or `@` pasted into a URL (generated base64 passwords have `/`)
 * either breaks the URL or silently moves the host; both are caught here, before a connection
 * is attempted. Messages never quote the URL: it holds the password.
 */
function checkSourceUrl(s: OptionReader, url: string, separatePassword: boolean): void {
  if (!/^postgres(ql)?:\/\//.test(url)) throw new ConfigError(s.at('url'), 'must be a postgres:// or postgresql:// URL');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(s.at('url'), 'not a valid URL (percent-encode the password)');
  }
  // An unencoded '@' after the host part means the password was cut at a '/', '?' or '#'.
  if (`${u.pathname}${u.search}${u.hash}`.includes('@')) {
    throw new ConfigError(s.at('url'), 'not a valid URL (percent-encode the password)');
  }
  if (separatePassword && u.password) throw new ConfigError(s.at('password'), 'source.url already has a password; give it in one place');
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
  const kind = r.choice('kind', ['logs', 'audit'] as const, 'logs');
  const source = parseSource(r.child('source'), kind);
  const logLevelFilter = r.choice<Level>('logLevelFilter', LEVELS, undefined);
  if (kind === 'audit' && logLevelFilter) throw new ConfigError('logLevelFilter', 'does not apply to audit logs (kind: audit); filter with resources');
  const rawResources = r.raw('resources');
  const resources = rawResources === undefined || rawResources === null ? undefined : parseResources(r.at('resources'), rawResources);
  if (resources && kind !== 'audit') throw new ConfigError('resources', 'applies only to audit logs (kind: audit, Kestra\'s AuditLogShipper)');
  const lookbackPeriod = r.duration('lookbackPeriod', 'P1D');
  const namespace = r.optionalString('namespace');
  const tenantId = r.optionalString('tenantId');
  const offsetKey = r.string('offsetKey', 'LogShipper-state');
  source.applicationName = `logship:${offsetKey}`;
  const del = r.boolean('delete', false);
  const safetyLag = r.duration('safetyLag', 'PT30S');
  const { workers, reason: workersReason } = resolveWorkers(r.at('workers'), r.raw('workers'), source.url);
  const rowsPerShard = r.integer('rowsPerShard', 1_000_000, 1000);
  const rowsPerShardSet = r.raw('rowsPerShard') !== undefined;
  const shardAttempts = r.integer('shardAttempts', 3, 1, 20);
  const stopGraceMs = durationMillis(r.at('stopGrace'), r.duration('stopGrace', 'PT30S'));
  const maxDuration = r.raw('maxDuration');
  const maxDurationMs = maxDuration === undefined || maxDuration === null ? null : checkMaxDuration(r.at('maxDuration'), maxDuration, stopGraceMs);
  const state = parseState(r.child('state'));
  const badRows = r.choice('badRows', ['deadLetter', 'fail'] as const, 'deadLetter');
  const maxRowBytes = r.byteSize('maxRowBytes', 64 * 1024 ** 2);
  if (maxRowBytes > MAX_ROW_BYTES) throw new ConfigError('maxRowBytes', `must be at most 1GiB, PostgreSQL's largest value (got ${maxRowBytes})`);
  const deadLetter = r.string('deadLetter', './logship-dead-letter');
  const allowDeadLetter = r.boolean('allowDeadLetter', false);
  const lateRows = parseLateRows(r.child('lateRows'));
  const queue = parseQueue(r.child('queue'), rowsPerShard);
  const list = r.list('logExporters');
  if (!list || list.length === 0) throw new ConfigError('logExporters', 'must list at least one exporter');
  const ids = new Set<string>();
  const logExporters = list.map((e, i) => parseExporter(`logExporters[${i}]`, e, ids));
  r.done();
  // With no offset stored, the window is [now - lookbackPeriod, now - safetyLag): empty, on
  // every run, unless the lookback is the longer of the two.
  if (isoDurationRangeMillis(lookbackPeriod)[1] <= isoDurationRangeMillis(safetyLag)[0]) {
    throw new ConfigError('lookbackPeriod', `must be longer than safetyLag (${lookbackPeriod} is not longer than ${safetyLag}; the first window would be empty on every run)`);
  }
  if (del && state.type !== 'postgres') {
    // The delete and the shard's checkpoint must commit in one transaction, or a crash between
    // them would either lose rows (deleted, not recorded) or re-export an emptied range.
    throw new ConfigError('delete', `requires state.type postgres (the delete and its checkpoint commit in one transaction; got state.type ${state.type})`);
  }
  if (resources && source.columns.resource === null) {
    throw new ConfigError('resources', 'the source has no resource column (source.columns.resource is null)');
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
    kind, source, logLevelFilter, resources, lookbackPeriod, namespace, tenantId, offsetKey, delete: del, safetyLag, workers, workersReason, rowsPerShard, rowsPerShardSet, shardAttempts,
    maxDurationMs, stopGraceMs, state, badRows, maxRowBytes, deadLetter, allowDeadLetter, lateRows, queue, logExporters,
  };
}
