import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { DeliveryService } from '../delivery/types.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';
import type { DatadogExporterConfig } from './config.js';
import type { IntakeAnswer } from '../delivery/intake.js';

const gzip = promisify(zlib.gzip);

// The SDK's common layer (server, API-key auth, request context, HTTP library), not its v2
// LogsApi: that module loads the ObjectSerializer and with it ~1,500 model classes (measured:
// 13 s and +90 MiB per worker thread on the 2-core test box, against 1 s for the common layer),
// and serialising logs is what the request builder already did to honour the byte caps.
const SDK_COMMON = '@datadog/datadog-api-client/dist/packages/datadog-api-client-common/index.js';
const SDK_LOGGER = '@datadog/datadog-api-client/dist/logger.js';

type Sdk = typeof import('@datadog/datadog-api-client/dist/packages/datadog-api-client-common/index.js');
type SdkConfiguration = ReturnType<Sdk['createConfiguration']>;

/** Posts log arrays to `{basePath}/api/v2/logs` through the Datadog API client's transport. */
export class DatadogService implements DeliveryService<JsonItemsRequest, IntakeAnswer> {
  readonly label: string;

  private constructor(
    private readonly config: DatadogExporterConfig,
    private readonly sdk: Sdk,
    private readonly configuration: SdkConfiguration,
  ) {
    this.label = `datadog exporter '${config.id}' (${config.basePath})`;
  }

  static async create(config: DatadogExporterConfig): Promise<DatadogService> {
    const sdk = (await import(SDK_COMMON)) as Sdk;
    // The SDK logs failed requests to the console itself; logship reports them, once, its way.
    const { logger } = (await import(SDK_LOGGER)) as { logger: { setLevel(level: string): void } };
    logger.setLevel('silent');
    const configuration = sdk.createConfiguration({
      baseServer: new sdk.BaseServerConfiguration(config.basePath, {}),
      authMethods: { apiKeyAuth: config.apiKey },
      // Node's own fetch (undici: pooled keep-alive connections); retries are the core's.
      fetch: globalThis.fetch,
      enableRetry: false,
      httpConfig: { compress: false },
    });
    return new DatadogService(config, sdk, configuration);
  }

  /**
   * Datadog's intake has no side-effect-free call to validate a key (`/api/v1/validate` lives on
   * the API host, not the intake), so a wrong key surfaces on the first request: a 403 stops
   * the run before the offset moves.
   */
  async check(): Promise<void> {}

  async send(request: JsonItemsRequest): Promise<IntakeAnswer> {
    const { sdk, configuration } = this;
    const context = configuration.getServer('v2.LogsApi.submitLog').makeRequestContext('/api/v2/logs', sdk.HttpMethod.POST);
    context.setHeaderParam('Accept', 'application/json');
    context.setHeaderParam('Content-Type', 'application/json');
    const json = request.body();
    if (this.config.compression === 'gzip') {
      context.setHeaderParam('Content-Encoding', 'gzip');
      context.setBody(await gzip(json, { level: 6 }));
    } else {
      context.setBody(json);
    }
    configuration.authMethods.apiKeyAuth?.applySecurityAuthentication(context);
    context.setHttpConfig({ compress: false, signal: AbortSignal.timeout(this.config.requestTimeoutMs) as never });
    const response = await configuration.httpApi.send(context);
    return {
      status: response.httpStatusCode,
      retryAfter: response.headers['retry-after'],
      rateLimitReset: response.headers['x-ratelimit-reset'],
      body: response.httpStatusCode >= 300 ? await response.body.text() : '',
    };
  }

  async close(): Promise<void> {}
}
