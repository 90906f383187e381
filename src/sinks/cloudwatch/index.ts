import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { CloudWatchExporterConfig } from './config.js';
import { PutLogEventsBuilder, type PutLogEventsRequest } from './request_builder.js';
import { decideCloudWatchError, decidePutLogEvents, type RejectedLogEventsInfo } from './retry.js';
import { CloudWatchService } from './service.js';

/**
 * CloudWatch Logs on the batched-delivery core. CloudWatch cannot dedupe, so this destination's
 * shards are read in (timestamp, key) order and acknowledged in-shard: after a crash a rerun
 * resends at most the calls that were in flight.
 */
export async function createCloudWatchExporter(config: CloudWatchExporterConfig): Promise<Exporter> {
  const service = await CloudWatchService.create(config);
  const driver: DeliveryDriver<PutLogEventsRequest, RejectedLogEventsInfo | undefined> = {
    label: service.label,
    newBuilder: () => new PutLogEventsBuilder(config.chunk, config.keyAttribute),
    service,
    classify: (request, rejected) => decidePutLogEvents(request.count, rejected),
    classifyError: (_request, err) => decideCloudWatchError(err, service.label),
  };
  return batchedExporter(config, driver);
}
