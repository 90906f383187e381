import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';
import type { Exporter } from '../types.js';
import type { DatadogExporterConfig } from './config.js';
import { datadogRequestBuilder } from './request_builder.js';
import type { IntakeAnswer } from '../delivery/intake.js';
import { decideDatadogAnswer } from './retry.js';
import { DatadogService } from './service.js';

/**
 * Datadog logs intake on the batched-delivery core: JSON arrays of at most 1000 logs and 5 MB,
 * gzip by default. Datadog cannot dedupe, so the core reads shards in order and acknowledges
 * the delivered prefix; a rerun after a crash resends at most the requests that were in flight.
 */
export async function createDatadogExporter(config: DatadogExporterConfig): Promise<Exporter> {
  const service = await DatadogService.create(config);
  const driver: DeliveryDriver<JsonItemsRequest, IntakeAnswer> = {
    label: service.label,
    newBuilder: () => datadogRequestBuilder(config),
    service,
    classify: decideDatadogAnswer,
  };
  return batchedExporter(config, driver);
}
