import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { SplunkExporterConfig } from './config.js';
import { HecRequestBuilder, type HecRequest } from './request_builder.js';
import { decideHecResponse, type HecResponse } from './retry.js';
import { HecService } from './service.js';

/**
 * Splunk HTTP Event Collector on the batched-delivery core. HEC cannot dedupe, so shards are read
 * in (timestamp, key) order and the acknowledged prefix bounds what a rerun resends; the row key
 * travels as an indexed field for search-time dedupe.
 */
export async function createSplunkExporter(config: SplunkExporterConfig): Promise<Exporter> {
  const service = new HecService(config);
  const template = { source: config.source, sourcetype: config.sourcetype, index: config.index, host: config.eventHost };
  const driver: DeliveryDriver<HecRequest, HecResponse> = {
    label: service.label,
    newBuilder: () => new HecRequestBuilder(config, template, config.chunk, config.maxBytes, config.compression === 'gzip'),
    service,
    classify: (request, response) => decideHecResponse(response, request.count, service.label),
  };
  return batchedExporter(config, driver);
}
