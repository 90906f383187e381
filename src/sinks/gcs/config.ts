import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import type { ObjectStoreOptions } from '../definition.js';
import { optionalUrl, readObjectStoreOptions } from '../object_store.js';

export const GCS_TYPES = ['gcs', 'io.kestra.plugin.ee.gcp.gcs.LogExporter'];

export function parseGcsExporter(r: OptionReader, id: string): GcsExporterConfig {
  const config: GcsExporterConfig = {
    ...readObjectStoreOptions(r, id),
    type: 'gcs',
    bucket: r.string('bucket'),
    projectId: r.optionalString('projectId'),
    serviceAccount: r.optionalString('serviceAccount'),
    endpoint: optionalUrl(r, 'endpoint'),
    chunkSize: r.byteSize('chunkSize', 8 * 1024 * 1024),
  };
  r.ignore('scopes'); // Kestra's OAuth scopes: the client library picks the storage scope itself
  if (config.chunkSize % (256 * 1024) !== 0) throw new ConfigError(r.at('chunkSize'), 'must be a multiple of 256KiB (a GCS resumable-upload rule)');
  if (config.serviceAccount !== undefined) {
    try {
      const sa = JSON.parse(config.serviceAccount) as { client_email?: unknown };
      if (typeof sa.client_email !== 'string') throw new Error('no client_email');
    } catch {
      throw new ConfigError(r.at('serviceAccount'), 'must be a service-account key in JSON (with client_email and private_key)');
    }
  }
  return config;
}

export interface GcsExporterConfig extends ObjectStoreOptions {
  type: 'gcs';
  bucket: string;
  projectId: string | undefined;
  serviceAccount: string | undefined;
  endpoint: string | undefined;
  /** Resumable-upload chunk size (a multiple of 256 KiB); the client buffers one chunk. */
  chunkSize: number;
}
