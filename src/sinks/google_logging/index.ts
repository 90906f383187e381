import type { DeliveryDriver } from '../delivery/types.js';
import { batchedExporter } from '../delivery/writer.js';
import type { Exporter } from '../types.js';
import type { GoogleLoggingExporterConfig } from './config.js';
import { WriteRequestBuilder, type WriteRequest } from './request_builder.js';
import { decideWriteError } from './retry.js';
import { GoogleLoggingService } from './service.js';

/** Cloud Logging on the batched-delivery core. */
export async function createGoogleLoggingExporter(config: GoogleLoggingExporterConfig): Promise<Exporter> {
  const service = GoogleLoggingService.create(config);
  const driver: DeliveryDriver<WriteRequest, unknown> = {
    label: service.label,
    newBuilder: () => new WriteRequestBuilder(config),
    service,
    classify: () => ({ kind: 'ok' }),
    classifyError: (request, err) => decideWriteError(err, request.count, service.label),
  };
  return batchedExporter(config, driver);
}
