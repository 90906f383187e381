import type { ShardSpec } from '../../core/keyset.js';
import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { AzureMonitorExporterConfig } from './config.js';
import { LogsRequestBuilder, type LogsRequest } from './request_builder.js';
import { decideCall, decideUpload, type UploadOutcome } from './retry.js';
import { AzureMonitorService } from './service.js';

/**
 * The Logs Ingestion API on the batched-delivery core: rows become DCR stream rows, a request is
 * one `upload` of at most `chunk` rows and ~1 MB, and the rows of a failed call are resent alone.
 * The API cannot dedupe, so the core reads in order and acknowledges in-shard (bounded duplicates).
 */
export async function createAzureMonitorExporter(config: AzureMonitorExporterConfig): Promise<Exporter> {
  const service = await AzureMonitorService.create(config);
  const driver: DeliveryDriver<LogsRequest, UploadOutcome> = {
    label: service.label,
    newBuilder: (_shard: ShardSpec) => new LogsRequestBuilder(config.chunk, config.maxRequestBytes, config),
    service: {
      check: () => service.check(),
      send: (request) => service.upload(request),
      close: () => service.close(),
    },
    classify: (request, outcome) => decideUpload(request, outcome, service.label),
    classifyError: (_request, err) => decideCall(err, service.label),
  };
  return batchedExporter(config, driver);
}
