import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { KinesisExporterConfig } from './config.js';
import { PutRecordsBuilder, type PutRecordsRequest } from './request_builder.js';
import { decideKinesisError, decidePutRecords } from './retry.js';
import { KinesisService, type PutRecordsOutcome } from './service.js';

/**
 * Kinesis Data Streams on the batched-delivery core. Kinesis cannot dedupe; every record
 * carries its row key (`keyAttribute`) so consumers can, and the in-shard acknowledged prefix
 * keeps a crash's resend to the requests that were in flight.
 */
export async function createKinesisExporter(config: KinesisExporterConfig): Promise<Exporter> {
  const service = await KinesisService.create(config);
  const driver: DeliveryDriver<PutRecordsRequest, PutRecordsOutcome> = {
    label: service.label,
    newBuilder: () => new PutRecordsBuilder(config),
    service,
    classify: (_request, outcome) => decidePutRecords(outcome, service.label),
    classifyError: (_request, err) => decideKinesisError(err, service.label, config.streamName),
  };
  return batchedExporter(config, driver);
}
