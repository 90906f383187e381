import type { DeliveryDriver } from '../delivery/types.js';
import { batchedExporter } from '../delivery/writer.js';
import type { Exporter } from '../types.js';
import type { LokiExporterConfig } from './config.js';
import { LokiRequestBuilder, type LokiRequest } from './request_builder.js';
import { decideLokiResponse, type LokiResponse } from './retry.js';
import { LokiService } from './service.js';

/**
 * Loki on the batched-delivery core. Loki refuses an entry more than `outOfOrderWindow` behind
 * the newest of its stream, so a request waits for the in-flight ones whose oldest entry the
 * request's newest would leave that far behind (across shards, the run's bounded lead does the same).
 */
export async function createLokiExporter(config: LokiExporterConfig): Promise<Exporter> {
  const service = new LokiService(config);
  const windowMicros = config.outOfOrderWindowMs * 1000;
  const driver: DeliveryDriver<LokiRequest, LokiResponse> = {
    label: service.label,
    newBuilder: () => new LokiRequestBuilder(config),
    service,
    classify: (request, response) => decideLokiResponse(request, response, service.label),
    waitsFor: (earlier, later) => earlier.minTsMicros < later.maxTsMicros - windowMicros,
  };
  return batchedExporter(config, driver);
}
