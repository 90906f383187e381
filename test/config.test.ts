import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigFile, loadConfigText } from '../src/config/load.js';
import { redact, type SecretSource } from '../src/core/secrets.js';
import YAML from 'yaml';
import { resolveWorkers } from '../src/config/workers.js';

const noSecrets: SecretSource = { env: {}, secretsDir: undefined };
const base = () => ({ logExporters: [{ id: 'a', type: 'file' }] });

function errorOf(config: unknown, secrets = noSecrets): string {
  const text = typeof config === 'string' ? config : YAML.stringify(config);
  try {
    loadConfigText(text, { secrets });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const withExporter = (extra: Record<string, unknown>) => ({ logExporters: [{ id: 'a', type: 'file', ...extra }] });

// One case per message: [what, config, expected message].
const cases: [string, unknown, string | RegExp][] = [
  ['a non-mapping exporter', { logExporters: ['file'] }, 'logExporters[0]: must be a mapping of options (got "file")'],
  ['a missing required option', { logExporters: [{ id: 'a' }] }, 'logExporters[0].type: is required'],
  ['an empty string', { source: { table: '' }, ...base() }, 'source.table: must be a non-empty string (got "")'],
  ['a non-positive integer', withExporter({ maxLinesPerFile: 0 }), 'logExporters[0].maxLinesPerFile: must be a positive integer (got 0)'],
  ['an integer out of its range', { ...base(), shardAttempts: 0 }, 'shardAttempts: must be an integer from 1 to 20 (got 0)'],
  ['workers out of range', { ...base(), workers: 0 }, 'workers: must be auto or an integer from 1 to 256 (got 0)'],
  ['workers neither auto nor a number', { ...base(), workers: 'many' }, 'workers: must be auto or an integer from 1 to 256 (got "many")'],
  ['a non-boolean', { ...base(), delete: 'yes' }, 'delete: must be true or false (got "yes")'],
  ['an unknown level', { ...base(), logLevelFilter: 'VERBOSE' }, 'logLevelFilter: must be one of TRACE, DEBUG, INFO, WARN, ERROR (got "VERBOSE")'],
  ['a bad ISO duration', { ...base(), lookbackPeriod: '1 day' }, 'lookbackPeriod: must be an ISO-8601 duration such as P1D or PT30S (got "1 day")'],
  ['a bad byte size', withExporter({ maxBytesPerFile: 'lots' }), 'logExporters[0].maxBytesPerFile: must be a positive byte size such as 256MB or 1048576 (got "lots")'],
  ['a non-list exporter list', { logExporters: { id: 'a' } }, 'logExporters: must be a list (got a mapping)'],
  ['a misspelt option', withExporter({ maxLinePerFile: 10 }), /^logExporters\[0\]\.maxLinePerFile: unknown option \(known options here: .*maxLinesPerFile/],
  ['a misspelt top-level option', { ...base(), lookback: 'P1D' }, /^lookback: unknown option/],
  ['no exporters', { logExporters: [] }, 'logExporters: must list at least one exporter'],
  ['a duplicate exporter id', { logExporters: [{ id: 'a', type: 'file' }, { id: 'a', type: 'file' }] }, 'logExporters[1].id: duplicate exporter id "a"'],
  ['an S3 exporter without a bucket', { logExporters: [{ id: 'a', type: 's3' }] }, 'logExporters[0].bucket: is required'],
  ['an S3 part below 5 MiB', { logExporters: [{ id: 'a', type: 's3', bucket: 'b', partSize: '1MB' }] }, 'logExporters[0].partSize: must be at least 5MiB (the S3 minimum part size)'],
  ['an S3 access key without its secret', { logExporters: [{ id: 'a', type: 's3', bucket: 'b', accessKeyId: 'AK' }] }, 'logExporters[0].secretKeyId: accessKeyId and secretKeyId go together (omit both for the default AWS credential chain)'],
  ['an endpoint that is not a URL', { logExporters: [{ id: 'a', type: 's3', bucket: 'b', endpoint: 'localhost:9000' }] }, 'logExporters[0].endpoint: must be an http:// or https:// URL (got "localhost:9000")'],
  ['too many request attempts', { logExporters: [{ id: 'a', type: 's3', bucket: 'b', maxAttempts: 50 }] }, 'logExporters[0].maxAttempts: must be an integer from 1 to 20 (got 50)'],
  ['a GCS chunk that is not a 256 KiB multiple', { logExporters: [{ id: 'a', type: 'gcs', bucket: 'b', chunkSize: 1000000 }] }, 'logExporters[0].chunkSize: must be a multiple of 256KiB (a GCS resumable-upload rule)'],
  ['a GCS service account that is not JSON', { logExporters: [{ id: 'a', type: 'gcs', bucket: 'b', serviceAccount: 'not json' }] }, 'logExporters[0].serviceAccount: must be a service-account key in JSON (with client_email and private_key)'],
  ['an Azure exporter without credentials', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c' }] }, 'logExporters[0].connectionString: give one of connectionString, sasToken, sharedKeyAccountName+sharedKeyAccountAccessKey, or tenantId+clientId+clientSecret'],
  ['an Azure exporter with two credentials', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c', connectionString: 'x', sasToken: 'y' }] }, 'logExporters[0].sasToken: choose one way to authenticate (got connectionString and sasToken)'],
  ['an Azure SAS token without endpoint', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c', sasToken: 'sv=1' }] }, 'logExporters[0].endpoint: is required unless connectionString is given'],
  ['an Azure shared key name without key', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c', endpoint: 'https://a.blob.core.windows.net', sharedKeyAccountName: 'a' }] }, 'logExporters[0].sharedKeyAccountAccessKey: is required with sharedKeyAccountName'],
  ['an Azure tenant without client', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c', endpoint: 'https://a.blob.core.windows.net', tenantId: 't' }] }, 'logExporters[0].clientId: is required with tenantId'],
  ['an index name with two date patterns', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'a-{yyyy}-{MM}', connection: { hosts: ['http://h:9200'] } }] }, 'logExporters[0].indexName: must contain at most one {date pattern} such as {yyyy.MM.dd} (got "a-{yyyy}-{MM}")'],
  ['an unsupported date pattern', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'a-{yyyy.ww}', connection: { hosts: ['http://h:9200'] } }] }, 'logExporters[0].indexName: unsupported date pattern {yyyy.ww} (use yyyy, yy, MM, dd, HH and . - _ separators)'],
  ['an upper-case index name', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'Logs', connection: { hosts: ['http://h:9200'] } }] }, 'logExporters[0].indexName: index names must be lower case'],
  ['a search exporter without a connection', { logExporters: [{ id: 'a', type: 'opensearch', indexName: 'logs' }] }, 'logExporters[0].connection: is required (at least connection.hosts)'],
  ['an empty host list', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: [] } }] }, 'logExporters[0].connection.hosts: must list at least one http(s):// URL'],
  ['a host that is not a URL', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ['es:9200'] } }] }, 'logExporters[0].connection.hosts[0]: must be an http:// or https:// URL (got "es:9200")'],
  ['basic auth without password', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ['http://h'], basicAuth: { username: 'u' } } }] }, 'logExporters[0].connection.basicAuth.password: is required with basicAuth'],
  ['basic auth without username', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ['http://h'], basicAuth: { password: 'p' } } }] }, 'logExporters[0].connection.basicAuth.username: is required with basicAuth'],
  ['basic auth and an API key', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ['http://h'], apiKey: 'k', basicAuth: { username: 'u', password: 'p' } } }] }, 'logExporters[0].connection.apiKey: choose basicAuth or apiKey, not both'],
  ['a non-string header', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ['http://h'], headers: { 'x-a': 1 } } }] }, 'logExporters[0].connection.headers.x-a: must be a non-empty string (got 1)'],
  ['an unknown opType', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', opType: 'upsert', connection: { hosts: ['http://h'] } }] }, 'logExporters[0].opType: must be one of create, index (got "upsert")'],
  ['a calendar request timeout', { logExporters: [{ id: 'a', type: 'elasticsearch', indexName: 'logs', requestTimeout: 'P1M', connection: { hosts: ['http://h'] } }] }, 'logExporters[0].requestTimeout: must be a positive duration in days, hours, minutes or seconds (such as PT60S)'],
  ['too many shard attempts', { ...base(), shardAttempts: 0 }, 'shardAttempts: must be an integer from 1 to 20 (got 0)'],
  ['an unknown exporter type', { logExporters: [{ id: 'a', type: 'carrier-pigeon' }] }, /^logExporters\[0\]\.type: unknown exporter type "carrier-pigeon" \(logship types: file, s3, /],
  ['Kestra ION format', withExporter({ format: 'ION' }), 'logExporters[0].format: not supported yet: ION (use NDJSON, JSON or PARQUET)'],
  ['file compression on Parquet', withExporter({ format: 'PARQUET', compression: 'gzip' }), 'logExporters[0].compression: does not apply to PARQUET, which compresses its pages: use parquetCompression (SNAPPY, GZIP, ZSTD or NONE)'],
  ['a Parquet codec on NDJSON', withExporter({ parquetCompression: 'SNAPPY' }), 'logExporters[0].parquetCompression: applies only to format PARQUET'],
  ['a row group size on NDJSON', withExporter({ rowGroupSize: 1000 }), 'logExporters[0].rowGroupSize: applies only to format PARQUET'],
  ['an unknown Parquet codec', withExporter({ format: 'PARQUET', parquetCompression: 'LZ4' }), 'logExporters[0].parquetCompression: must be one of SNAPPY, GZIP, ZSTD, NONE (got "LZ4")'],
  ['a tiny row group', withExporter({ format: 'PARQUET', rowGroupSize: 10 }), 'logExporters[0].rowGroupSize: must be an integer from 100 to 10000000 (got 10)'],
  ['a compression level out of range', withExporter({ compression: 'gzip', compressionLevel: 12 }), 'logExporters[0].compressionLevel: must be an integer from 1 to 9 (got 12)'],
  ['an unknown template placeholder', withExporter({ keyTemplate: '{prefix}-{shard}-{part}-{minute}' }), /^logExporters\[0\]\.keyTemplate: unknown placeholder \{minute\}/],
  ['a template without {part}', withExporter({ keyTemplate: '{prefix}-{shard}.{ext}' }), 'logExporters[0].keyTemplate: must contain {shard} and {part} so every file name is unique'],
  ['a template with {part} before {shard}', withExporter({ keyTemplate: '{part}-{shard}.{ext}' }), 'logExporters[0].keyTemplate: {part} must come after {shard}'],
  ['a non-postgres URL', { source: { url: 'mysql://x' }, ...base() }, 'source.url: must be a postgres:// or postgresql:// URL'],
  ['a state table that is not an identifier', { ...base(), state: { type: 'postgres', table: 'x; drop' } }, 'state.table: must be a plain SQL identifier (letters, digits, underscore)'],
  ['a file state without a path', { ...base(), state: { type: 'file' } }, 'state.path: is required'],
  ['delete with a file state', { ...base(), delete: true, state: { type: 'file', path: '/tmp/s.json' } }, 'delete: requires state.type postgres (the delete and its checkpoint commit in one transaction; got state.type file)'],
  ['a level filter without a level column', { ...base(), source: { columns: { level: null } }, logLevelFilter: 'INFO' }, 'logLevelFilter: the source has no level column (source.columns.level is null)'],
  ['a namespace filter without a namespace column', { ...base(), source: { columns: { namespace: null } }, namespace: 'a' }, 'namespace: the source has no namespace column (source.columns.namespace is null)'],
  ['a tenant filter without a tenant column', { ...base(), source: { columns: { tenant: null } }, tenantId: 'main' }, 'tenantId: the source has no tenant column (source.columns.tenant is null)'],
  ['a null required column', { ...base(), source: { columns: { timestamp: null } } }, 'source.columns.timestamp: must name a column'],
  ['a non-string optional column', { ...base(), source: { columns: { level: 3 } } }, 'source.columns.level: must name a column, or be null when the table has none'],
  ['an unknown column mapping', { ...base(), source: { columns: { severity: 'x' } } }, /^source\.columns\.severity: unknown option/],
  ['an unknown stream mode', { ...base(), source: { stream: 'fast' } }, 'source.stream: must be one of copy, cursor (got "fast")'],
  ['a missing secret', { source: { url: "{{ secret('PG_URL') }}" }, ...base() }, /^source\.url: secret 'PG_URL' is not set: define environment variable PG_URL/],
  ['an unsupported expression', withExporter({ logFilePrefix: '{{ now() }}' }), /^logExporters\[0\]\.logFilePrefix: the Kestra expression \{\{ now\(\) \}\} is not supported outside Kestra/],
  ['invalid YAML', 'logExporters: [\n  - id: a\n type: file', /^config: not valid YAML \(line \d+, column \d+\)/],
  ['a calendar maxDuration', { ...base(), maxDuration: 'P1M' }, 'maxDuration: must be a fixed-length duration, without years or months (got "P1M")'],
  ['a maxDuration within stopGrace', { ...base(), maxDuration: 'PT20S' }, 'maxDuration: must be longer than stopGrace (30 s) (got "PT20S")'],
  ['a stopGrace that is not a duration', { ...base(), stopGrace: '30s' }, 'stopGrace: must be an ISO-8601 duration such as P1D or PT30S (got "30s")'],
  ['a calendar stopGrace', { ...base(), stopGrace: 'P1Y' }, 'stopGrace: must be a fixed-length duration, without years or months (got "P1Y")'],
  ['an object state URI of another scheme', { ...base(), state: { type: 's3', uri: 'gs://b/p/' } }, 'state.uri: must look like s3://bucket/prefix/ for state.type s3 (got "gs://b/p/")'],
  ['an Azure state URI that is not azure://', { ...base(), state: { type: 'azure-blob', uri: 'https://a.blob.core.windows.net/c', connectionString: 'x' } }, 'state.uri: must look like azure://container/prefix/ for state.type azure-blob (got "https://a.blob.core.windows.net/c")'],
  ['an object state without a URI', { ...base(), state: { type: 's3' } }, 'state.uri: is required'],
  ['a calendar state flushInterval', { ...base(), state: { type: 's3', uri: 's3://b/', flushInterval: 'P1M' } }, 'state.flushInterval: must be a positive fixed-length duration, without years or months (got "P1M")'],
  ['a zero state leaseDuration', { ...base(), state: { type: 's3', uri: 's3://b/', leaseDuration: 'PT0S' } }, 'state.leaseDuration: must be a positive fixed-length duration, without years or months (got "PT0S")'],
  ['an exporter-only option on object state', { ...base(), state: { type: 's3', uri: 's3://b/', format: 'JSON' } }, /^state\.format: unknown option/],
  ['S3 state credentials half given', { ...base(), state: { type: 's3', uri: 's3://b/', accessKeyId: 'AK' } }, 'state.secretKeyId: accessKeyId and secretKeyId go together (omit both for the default AWS credential chain)'],
  ['Azure state without credentials', { ...base(), state: { type: 'azure-blob', uri: 'azure://c/' } }, 'state.connectionString: give one of connectionString, sasToken, sharedKeyAccountName+sharedKeyAccountAccessKey, or tenantId+clientId+clientSecret'],
  ['a GCS state URI that is not gs://', { ...base(), state: { type: 'gcs', uri: 's3://b/' } }, 'state.uri: must look like gs://bucket/prefix/ for state.type gcs (got "s3://b/")'],
  ['delete with an object-store state', { ...base(), delete: true, state: { type: 's3', uri: 's3://b/' } }, 'delete: requires state.type postgres (the delete and its checkpoint commit in one transaction; got state.type s3)'],
  ['an unknown bad-row policy', { ...base(), badRows: 'skip' }, 'badRows: must be one of deadLetter, fail (got "skip")'],
  ['a bad maxRowBytes', { ...base(), maxRowBytes: 'huge' }, 'maxRowBytes: must be a positive byte size such as 256MB or 1048576 (got "huge")'],
  ['a maxRowBytes over PostgreSQL\'s largest value', { ...base(), maxRowBytes: '2GiB' }, "maxRowBytes: must be at most 1GiB, PostgreSQL's largest value (got 2147483648)"],
  ['a non-boolean allowDeadLetter', { ...base(), allowDeadLetter: 'no' }, 'allowDeadLetter: must be true or false (got "no")'],
  ['an empty dead-letter directory', { ...base(), deadLetter: '' }, 'deadLetter: must be a non-empty string (got "")'],
  ['a late-row horizon in months', { ...base(), lateRows: { horizon: 'P1M' } }, 'lateRows.horizon: must be a duration without years or months, such as PT1H or P1D (got "P1M")'],
  ['a late-row horizon that is not a duration', { ...base(), lateRows: { horizon: '1h' } }, 'lateRows.horizon: must be an ISO-8601 duration such as P1D or PT30S (got "1h")'],
  ['lateRows that is not a mapping', { ...base(), lateRows: 'PT1H' }, 'lateRows: must be a mapping of options (got "PT1H")'],
  ['an unknown lateRows option', { ...base(), lateRows: { horizn: 'PT1H' } }, /^lateRows\.horizn: unknown option \(known options here: horizon\)/],
  ['a rows-per-shard below the floor', { ...base(), rowsPerShard: 10 }, 'rowsPerShard: must be an integer from 1000 to 9007199254740991 (got 10)'],
];

describe('config errors name the option path', () => {
  it.each(cases)('%s', (_what, config, expected) => {
    const message = errorOf(config);
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
  });
});

describe('Kestra flows', () => {
  const flowDir = path.resolve(__dirname, '../fixtures/kestra-flows');

  it('maps the nightly file flow as it is, ignoring the trigger', () => {
    const config = loadConfigFile(path.join(flowDir, 'nightly-file.yaml'), { secrets: noSecrets });
    expect(config).toMatchObject({
      logLevelFilter: 'WARN', lookbackPeriod: 'P7D', namespace: 'company.team', offsetKey: 'nightly-archive-offset', delete: false,
    });
    expect(config.logExporters[0]).toMatchObject({ id: 'local', type: 'file', format: 'JSON', maxLinesPerFile: 50000, logFilePrefix: 'team-logs' });
  });

  it('maps the multi-exporter flow: S3 and Elasticsearch with their secrets', () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_KEY_ID: 'secret-example', ES_PASSWORD: 'pw-example' };
    const config = loadConfigFile(path.join(flowDir, 'multi-exporter.yaml'), { secrets: { env, secretsDir: undefined } });
    expect(config).toMatchObject({ logLevelFilter: 'INFO', lookbackPeriod: 'P1D', offsetKey: 'everywhere-offset' });
    expect(config.logExporters[1]).toMatchObject({
      id: 'search', type: 'elasticsearch', indexName: 'kestra-logs', chunk: 2000, hosts: ['http://127.0.0.1:9200'],
      username: 'kestra_user', password: 'pw-example', opType: 'create', concurrency: 4, flushBytes: 5_000_000, allowDeadLetter: false,
    });
  });

  it('maps a Kestra S3 exporter with its secrets', () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_KEY_ID: 'secret-example' };
    const flow = fs.readFileSync(path.join(flowDir, 'multi-exporter.yaml'), 'utf8').replace(/      - id: search[\s\S]*$/, '');
    const config = loadConfigText(flow, { secrets: { env, secretsDir: undefined } });
    expect(config.logExporters[0]).toMatchObject({
      id: 'archive', type: 's3', bucket: 'log-archive', region: 'eu-west-2', accessKeyId: 'AKIAEXAMPLE', secretKeyId: 'secret-example',
      format: 'JSON', logFilePrefix: 'kestra-log-file', maxLinesPerFile: 1000000, keyTemplate: '{prefix}/dt={date}/hour={hour}/{prefix}-{shard}-{part}.{ext}',
    });
  });

  it('names the task path for unknown task properties', () => {
    const flow = { id: 'f', namespace: 'n', tasks: [{ id: 's', type: 'io.kestra.plugin.ee.core.log.LogShipper', logExporters: [{ id: 'a', type: 'file' }], lookBack: 'P1D' }] };
    expect(errorOf(flow)).toMatch(/^tasks\[0\]\.lookBack: unknown option/);
  });

  it('names the task path for errors inside the mapped options', () => {
    const flow = { id: 'f', namespace: 'n', tasks: [{ id: 's', type: 'io.kestra.plugin.ee.core.log.LogShipper', logExporters: [{ id: 'a', type: 'file', maxLinesPerFile: -1 }] }] };
    expect(errorOf(flow)).toBe('tasks[0].logExporters[0].maxLinesPerFile: must be a positive integer (got -1)');
  });

  it('says when a flow has no LogShipper task', () => {
    expect(errorOf({ id: 'f', namespace: 'n', tasks: [{ id: 'x', type: 'io.kestra.plugin.core.log.Log' }] })).toBe(
      'tasks: the Kestra flow has no task of type io.kestra.plugin.ee.core.log.LogShipper or io.kestra.plugin.ee.core.log.AuditLogShipper',
    );
  });

  it('asks to choose when a flow has two LogShipper tasks', () => {
    const t = (id: string) => ({ id, type: 'io.kestra.plugin.ee.core.log.LogShipper', logExporters: [{ id: 'a', type: 'file' }] });
    expect(errorOf({ id: 'f', namespace: 'n', tasks: [t('one'), { id: 'seq', type: 'io.kestra.plugin.core.flow.Sequential', tasks: [t('two')] }] })).toBe(
      'tasks: the Kestra flow has 2 LogShipper/AuditLogShipper tasks; choose one with --task (one, two)',
    );
  });
});

describe('secrets', () => {
  it('reads env first, then the secrets directory, and redacts both', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-secrets-'));
    fs.writeFileSync(path.join(dir, 'FILE_SECRET'), 'from-the-file-123\n');
    const config = loadConfigText(
      YAML.stringify({ source: { url: "postgres://u:{{ secret('ENV_SECRET') }}@h/db" }, logExporters: [{ id: 'a', type: 'file', logFilePrefix: "{{ secret('FILE_SECRET') }}" }] }),
      { secrets: { env: { ENV_SECRET: 'from-the-env-456' }, secretsDir: dir } },
    );
    expect(config.source.url).toBe('postgres://u:from-the-env-456@h/db');
    expect(config.logExporters[0]).toMatchObject({ type: 'file', logFilePrefix: 'from-the-file-123' });
    expect(redact('failed: from-the-file-123 and from-the-env-456')).toBe('failed: *** and ***');
    expect(redact('cannot reach postgres://user:hunter22@db:5432/x')).toBe('cannot reach postgres://user:***@db:5432/x');
  });

  it('the missing-secret message names the secrets directory when one is set', () => {
    const message = errorOf({ source: { url: "{{ secret('NOPE') }}" }, ...base() }, { env: {}, secretsDir: '/run/secrets' });
    expect(message).toBe("source.url: secret 'NOPE' is not set: define environment variable NOPE or file /run/secrets/NOPE");
  });
});

describe('defaults', () => {
  it('fills every default', () => {
    const c = loadConfigText(YAML.stringify(base()), { secrets: noSecrets });
    expect(c).toMatchObject({
      lookbackPeriod: 'P1D', offsetKey: 'LogShipper-state', delete: false, safetyLag: 'PT30S', rowsPerShard: 1_000_000, maxDurationMs: null, stopGraceMs: 30_000,
      badRows: 'deadLetter', maxRowBytes: 64 * 1024 ** 2, deadLetter: './logship-dead-letter', allowDeadLetter: false, lateRows: { horizon: 'PT1H' },
      state: { type: 'postgres', table: 'logship_state' },
      source: { table: 'logs', stream: 'copy', fetchSize: 5000, columns: { timestamp: 'timestamp', key: 'key', body: 'value', level: 'level' } },
    });
    expect(c.logExporters[0]).toMatchObject({
      directory: './logship-out', format: 'NDJSON', compression: 'gzip', compressionLevel: 1, maxLinesPerFile: 100000,
      maxBytesPerFile: 1024 ** 3, logFilePrefix: 'kestra-log-file', keyTemplate: '{prefix}-{shard}-{part}.{ext}',
    });
  });
});

describe('workers: auto', () => {
  it('uses half the cores when the database is on this host (loopback, socket, PG* defaults)', () => {
    for (const url of ['postgres://u@localhost:5432/db', 'postgres://u@127.0.0.1/db', 'postgres://u@[::1]:5433/db', 'postgres:///db?host=/var/run/postgresql']) {
      expect(resolveWorkers('workers', 'auto', url, {}, 8)).toMatchObject({ workers: 4 });
    }
    expect(resolveWorkers('workers', undefined, undefined, {}, 8).workers).toBe(4);
    expect(resolveWorkers('workers', undefined, undefined, { PGHOST: '/tmp' }, 2).workers).toBe(1);
    expect(resolveWorkers('workers', undefined, `postgres://u@${os.hostname()}/db`, {}, 6).workers).toBe(3);
  });

  it('uses every core when the database runs elsewhere, and says why', () => {
    const c = resolveWorkers('workers', 'auto', 'postgres://u@db.internal.example:5432/db', {}, 8);
    expect(c).toEqual({ workers: 8, reason: 'auto: the database is on another host (db.internal.example), so one per core (8)' });
    expect(resolveWorkers('workers', undefined, undefined, { PGHOST: '10.1.2.3' }, 4).workers).toBe(4);
  });

  it('keeps at least one worker and honours a number as given', () => {
    expect(resolveWorkers('workers', 'auto', 'postgres://localhost/db', {}, 1).workers).toBe(1);
    expect(resolveWorkers('workers', 3, 'postgres://localhost/db', {}, 8)).toEqual({ workers: 3, reason: 'set in the config' });
  });
});
