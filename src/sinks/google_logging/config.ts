import { ConfigError } from '../../core/errors.js';
import { describe, type OptionReader } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, stringMap, type DeliveryOptions } from '../delivery/options.js';

export const GOOGLE_LOGGING_TYPES = ['google-logging', 'io.kestra.plugin.ee.gcp.operationalsuite.LogExporter', 'io.kestra.plugin.ee.gcp.LogExporter'];

/** Cloud Logging's public endpoint; `LOGSHIP_GOOGLE_LOGGING_ENDPOINT` replaces it for flows that name none. */
export const DEFAULT_ENDPOINT = 'https://logging.googleapis.com';

/** Cloud Logging's limits: 256 KiB per LogEntry, 10 MB per entries.write request. */
export const MAX_ENTRY_BYTES = 256 * 1024;
export const MAX_REQUEST_BYTES = 10 * 1000 * 1000;

export interface MonitoredResource {
  type: string;
  labels: Record<string, string>;
}

export interface GoogleLoggingExporterConfig extends DeliveryOptions, EventMapping {
  type: 'google-logging';
  projectId: string;
  /** A service account key (JSON text); without it, Application Default Credentials. */
  serviceAccount: string | undefined;
  scopes: string[];
  /** The log's id; entries go to `projects/{projectId}/logs/{logName}`. */
  logName: string;
  resource: MonitoredResource;
  /** Base URL of the Logging API (REST). */
  endpoint: string;
  /** Extra labels on every entry. */
  labels: Record<string, string>;
}

function readResource(r: OptionReader, projectId: string): MonitoredResource {
  const raw = r.raw('resource');
  if (raw === undefined || raw === null) return { type: 'global', labels: { project_id: projectId } };
  if (typeof raw === 'string' && raw.length > 0) return { type: raw, labels: { project_id: projectId } };
  const child = typeof raw === 'object' && !Array.isArray(raw) ? r.child('resource') : undefined;
  if (!child) throw new ConfigError(r.at('resource'), `must be a monitored-resource type or {type, labels} (got ${describe(raw)})`);
  const resource = { type: child.string('type'), labels: { project_id: projectId, ...stringMap(child, 'labels') } };
  child.done();
  return resource;
}

function readServiceAccount(r: OptionReader): string | undefined {
  const text = r.optionalString('serviceAccount');
  if (text === undefined) return undefined;
  let key: { type?: unknown; client_email?: unknown; private_key?: unknown };
  try {
    key = JSON.parse(text) as typeof key;
  } catch {
    throw new ConfigError(r.at('serviceAccount'), 'must be a service account key in JSON (the file\'s content, not its path)');
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw new ConfigError(r.at('serviceAccount'), 'must be a service account key with client_email and private_key');
  }
  return text;
}

export function parseGoogleLoggingExporter(r: OptionReader, id: string): GoogleLoggingExporterConfig {
  const projectId = r.string('projectId');
  if (!/^[a-z][a-z0-9.:-]*[a-z0-9]$/.test(projectId)) throw new ConfigError(r.at('projectId'), `is not a Google Cloud project id (got ${JSON.stringify(projectId)})`);
  const logName = r.string('logName', 'kestra');
  if (logName.length > 512 || !/^[A-Za-z0-9/_\-.]+$/.test(logName)) throw new ConfigError(r.at('logName'), 'may hold only letters, digits, /, _, - and . (at most 512 characters)');
  const scopes = r.list('scopes') ?? ['https://www.googleapis.com/auth/cloud-platform'];
  scopes.forEach((s, i) => {
    if (typeof s !== 'string' || s.length === 0) throw new ConfigError(`${r.at('scopes')}[${i}]`, `must be an OAuth scope URL (got ${describe(s)})`);
  });
  if (r.has('impersonatedServiceAccount')) throw new ConfigError(r.at('impersonatedServiceAccount'), 'is not supported yet: give the service account\'s own key in serviceAccount, or run with its Application Default Credentials');
  return {
    type: 'google-logging',
    projectId,
    serviceAccount: readServiceAccount(r),
    scopes: scopes as string[],
    logName,
    resource: readResource(r, projectId),
    endpoint: httpUrl(r, 'endpoint', process.env.LOGSHIP_GOOGLE_LOGGING_ENDPOINT || DEFAULT_ENDPOINT),
    labels: stringMap(r, 'labels'),
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
  };
}
