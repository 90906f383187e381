import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import type { ObjectStoreOptions } from '../definition.js';
import { checkTenantId } from '../azure_tenant.js';
import { optionalUrl, readObjectStoreOptions } from '../object_store.js';

export const AZURE_TYPES = ['azure-blob', 'io.kestra.plugin.ee.azure.storage.LogExporter'];

export function parseAzureBlobExporter(r: OptionReader, id: string): AzureBlobExporterConfig {
  const config: AzureBlobExporterConfig = {
    ...readObjectStoreOptions(r, id),
    type: 'azure-blob',
    endpoint: optionalUrl(r, 'endpoint'),
    containerName: r.string('containerName'),
    connectionString: r.optionalString('connectionString'),
    sasToken: r.optionalString('sasToken'),
    sharedKeyAccountName: r.optionalString('sharedKeyAccountName'),
    sharedKeyAccountAccessKey: r.optionalString('sharedKeyAccountAccessKey'),
    tenantId: r.optionalString('tenantId'),
    clientId: r.optionalString('clientId'),
    clientSecret: r.optionalString('clientSecret'),
    blockSize: r.byteSize('blockSize', 8 * 1024 * 1024),
    concurrency: r.integer('concurrency', 4, 1, 64),
  };
  const ways = [
    config.connectionString && 'connectionString',
    config.sasToken && 'sasToken',
    (config.sharedKeyAccountName || config.sharedKeyAccountAccessKey) && 'sharedKeyAccountName',
    (config.tenantId || config.clientId || config.clientSecret) && 'tenantId',
  ].filter(Boolean);
  if (ways.length === 0) throw new ConfigError(r.at('connectionString'), 'give one of connectionString, sasToken, sharedKeyAccountName+sharedKeyAccountAccessKey, or tenantId+clientId+clientSecret');
  if (ways.length > 1) throw new ConfigError(r.at(String(ways[1])), `choose one way to authenticate (got ${ways.join(' and ')})`);
  if (!config.connectionString && !config.endpoint) throw new ConfigError(r.at('endpoint'), 'is required unless connectionString is given');
  if (config.sharedKeyAccountName && !config.sharedKeyAccountAccessKey) throw new ConfigError(r.at('sharedKeyAccountAccessKey'), 'is required with sharedKeyAccountName');
  if (config.tenantId && !(config.clientId && config.clientSecret)) throw new ConfigError(r.at(config.clientId ? 'clientSecret' : 'clientId'), 'is required with tenantId');
  checkTenantId(r, config.tenantId);
  return config;
}

export interface AzureBlobExporterConfig extends ObjectStoreOptions {
  type: 'azure-blob';
  endpoint: string | undefined;
  containerName: string;
  connectionString: string | undefined;
  sasToken: string | undefined;
  sharedKeyAccountName: string | undefined;
  sharedKeyAccountAccessKey: string | undefined;
  tenantId: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  blockSize: number;
  concurrency: number;
}
