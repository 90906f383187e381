import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { IntakeAnswer } from '../delivery/intake.js';
import type { JsonItemsRequest } from '../delivery/json_items.js';
import type { Exporter } from '../types.js';
import type { NewRelicExporterConfig } from './config.js';
import { newRelicRequestBuilder } from './request_builder.js';
import { decideNewRelicAnswer } from './retry.js';
import { NewRelicService } from './service.js';

/**
 * New Relic Log API on the batched-delivery core: the detailed payload (common attributes once,
 * then the logs), at most 1 MB per POST as sent. New Relic cannot dedupe, so the core reads
 * shards in order and acknowledges the delivered prefix; a rerun after a crash resends at most
 * the requests that were in flight.
 */
export async function createNewRelicExporter(config: NewRelicExporterConfig): Promise<Exporter> {
  const service = new NewRelicService(config);
  const driver: DeliveryDriver<JsonItemsRequest, IntakeAnswer> = {
    label: service.label,
    newBuilder: () => newRelicRequestBuilder(config),
    service,
    classify: decideNewRelicAnswer,
  };
  return batchedExporter(config, driver);
}
