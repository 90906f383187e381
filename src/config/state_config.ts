import { checkFileLocation } from '../core/fs_checks.js';
import { ConfigError } from '../core/errors.js';
import { isoDurationMillis } from '../core/options.js';
import { OptionReader } from '../core/options.js';
import type { ObjectStateConfig, StateConfig } from '../state/options.js';
import { parseAzureBlobExporter } from '../sinks/azure_blob/config.js';
import { parseGcsExporter } from '../sinks/gcs/config.js';
import { parseS3Exporter } from '../sinks/s3/config.js';

type ObjectType = ObjectStateConfig['type'];

/** The exporter options that say how to reach and authenticate to the store; nothing else applies to state. */
const CLIENT_OPTIONS: Record<ObjectType, string[]> = {
  s3: ['region', 'accessKeyId', 'secretKeyId', 'sessionToken', 'endpoint', 'endpointOverride', 'forcePathStyle', 'maxAttempts'],
  gcs: ['projectId', 'serviceAccount', 'endpoint', 'maxAttempts'],
  'azure-blob': ['endpoint', 'connectionString', 'sasToken', 'sharedKeyAccountName', 'sharedKeyAccountAccessKey', 'tenantId', 'clientId', 'clientSecret', 'maxAttempts'],
};

const SCHEME: Record<ObjectType, string> = { s3: 's3', gcs: 'gs', 'azure-blob': 'azure' };

export function parseState(r: OptionReader | undefined): StateConfig {
  if (!r) return { type: 'postgres', table: 'logship_state' };
  const type = r.choice('type', ['postgres', 'file', 's3', 'gcs', 'azure-blob'] as const, 'postgres');
  let state: StateConfig;
  if (type === 'file') {
    state = { type, path: r.string('path') };
    checkFileLocation(r.at('path'), state.path, 'logship-state.json');
  }
  else if (type === 'postgres') {
    state = { type, table: r.string('table', 'logship_state') };
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(state.table)) throw new ConfigError(r.at('table'), 'must be a plain SQL identifier (letters, digits, underscore)');
  } else state = parseObjectState(r, type);
  r.done();
  return state;
}

function fixedMillis(r: OptionReader, key: string, fallback: string): number {
  const iso = r.duration(key, fallback);
  const ms = isoDurationMillis(iso);
  if (ms === undefined || ms <= 0) throw new ConfigError(r.at(key), `must be a positive fixed-length duration, without years or months (got ${JSON.stringify(iso)})`);
  return ms;
}

function parseObjectState(r: OptionReader, type: ObjectType): ObjectStateConfig {
  const uri = r.string('uri');
  const m = /^([a-z0-9]+):\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m || m[1] !== SCHEME[type]) {
    throw new ConfigError(r.at('uri'), `must look like ${SCHEME[type]}://${type === 'azure-blob' ? 'container' : 'bucket'}/prefix/ for state.type ${type} (got ${JSON.stringify(uri)})`);
  }
  const container = m[2]!;
  const prefix = m[3] && !m[3].endsWith('/') ? `${m[3]}/` : (m[3] ?? '');
  const flushIntervalMs = fixedMillis(r, 'flushInterval', 'PT10S');
  const leaseMs = fixedMillis(r, 'leaseDuration', 'PT2M');
  // Only the client options are read here; the exporter's parser validates them with its own
  // rules and messages (paths stay state.*), so credentials work exactly as for exporters.
  const picked: Record<string, unknown> = {};
  for (const key of CLIENT_OPTIONS[type]) {
    const v = r.raw(key);
    if (v !== undefined) picked[key] = v;
  }
  const client = OptionReader.of(r.path, type === 'azure-blob' ? { ...picked, containerName: container } : { ...picked, bucket: container });
  const store = type === 's3' ? parseS3Exporter(client, 'state') : type === 'gcs' ? parseGcsExporter(client, 'state') : parseAzureBlobExporter(client, 'state');
  return { type, uri, prefix, flushIntervalMs, leaseMs, store };
}
