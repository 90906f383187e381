import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import { readEventMapping, type EventMapping } from '../delivery/event.js';
import { httpUrl, readDeliveryOptions, type DeliveryOptions } from '../delivery/options.js';
import { checkTenantId } from '../azure_tenant.js';

export const AZURE_MONITOR_TYPES = ['azure-monitor', 'io.kestra.plugin.ee.azure.monitor.LogExporter', 'io.kestra.plugin.ee.azure.LogExporter'];

/** The Logs Ingestion API takes at most 1 MB per call; the SDK cuts its chunks below 1,000,000 bytes of JSON. */
export const MAX_CALL_BYTES = 1_000_000;
/** A request above 1,000,000 bytes becomes several calls; more than 16 would only delay acknowledgements. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
export const PUBLIC_CLOUD_AUTHORITY = 'https://login.microsoftonline.com';
export const PUBLIC_CLOUD_AUDIENCE = 'https://monitor.azure.com';

export interface AzureMonitorExporterConfig extends DeliveryOptions, EventMapping {
  type: 'azure-monitor';
  /** The data collection endpoint (or the DCR's own logs ingestion endpoint). */
  endpoint: string;
  /** The DCR's immutable id (`dcr-` and 32 hex digits). */
  ruleId: string;
  /** The stream declared in the DCR (`Custom-…`). */
  streamName: string;
  /** A service principal; without one, DefaultAzureCredential (environment, workload or managed identity, Azure CLI). */
  servicePrincipal: { tenantId: string; clientId: string; clientSecret: string } | undefined;
  /** Entra ID host: the public cloud by default; sovereign clouds and local tests set their own. */
  authorityHost: string;
  /** Token audience of the ingestion API (`https://monitor.azure.us` in Azure Government). */
  audience: string;
  /**
   * JSON bytes per request (one `upload`), `chunk` rows capping it too. Up to 1,000,000 a request
   * is one HTTP call; above, the SDK cuts it into calls of < 1,000,000 bytes, sent one after the
   * other, and only the rows of a failed call are resent.
   */
  maxRequestBytes: number;
}

const DCR_ID = /^dcr-[0-9a-f]{32}$/i;

export function parseAzureMonitorExporter(r: OptionReader, id: string): AzureMonitorExporterConfig {
  const endpoint = httpUrl(r, 'endpoint');
  const ruleId = r.string('ruleId');
  if (!DCR_ID.test(ruleId)) throw new ConfigError(r.at('ruleId'), `must be the data collection rule's immutable id, dcr- and 32 hex digits (got ${JSON.stringify(ruleId)})`);
  const streamName = r.string('streamName');
  const tenantId = r.optionalString('tenantId');
  const clientId = r.optionalString('clientId');
  const clientSecret = r.optionalString('clientSecret');
  let servicePrincipal: AzureMonitorExporterConfig['servicePrincipal'];
  if (tenantId !== undefined || clientId !== undefined || clientSecret !== undefined) {
    if (!tenantId) throw new ConfigError(r.at('tenantId'), 'is required with clientId and clientSecret');
    if (!clientId) throw new ConfigError(r.at('clientId'), 'is required with tenantId and clientSecret');
    if (!clientSecret) throw new ConfigError(r.at('clientSecret'), 'is required with tenantId and clientId');
    checkTenantId(r, tenantId);
    servicePrincipal = { tenantId, clientId, clientSecret };
  }
  // @azure/identity's own default is AZURE_AUTHORITY_HOST, then the public cloud; keep it so.
  const authorityHost = httpUrl(r, 'authorityHost', process.env.AZURE_AUTHORITY_HOST || PUBLIC_CLOUD_AUTHORITY);
  const audience = httpUrl(r, 'audience', PUBLIC_CLOUD_AUDIENCE);
  const maxRequestBytes = r.byteSize('maxRequestBytes', MAX_CALL_BYTES);
  if (maxRequestBytes > MAX_REQUEST_BYTES || maxRequestBytes < 1024) throw new ConfigError(r.at('maxRequestBytes'), `must be between 1 KiB and 16 MiB (got ${maxRequestBytes})`);
  return {
    type: 'azure-monitor', endpoint, ruleId, streamName, servicePrincipal, authorityHost, audience, maxRequestBytes,
    ...readEventMapping(r),
    ...readDeliveryOptions(r, id, { chunk: 1000, maxChunk: 100_000 }),
  };
}
