import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { OtlpExporterConfig } from './config.js';
import { OtlpRequestBuilder, type OtlpRequest } from './request_builder.js';
import { decideOtlpResponse, type OtlpResponse } from './retry.js';
import { OtlpService } from './service.js';

/**
 * OTLP/HTTP logs on the batched-delivery core, encoded by @opentelemetry/otlp-transformer
 * (protobuf by default, JSON on request). OTLP receivers cannot dedupe, so shards are read in
 * (timestamp, key) order and the acknowledged prefix bounds what a rerun resends; the row key is
 * a log attribute for downstream dedupe.
 */
export async function createOtlpExporter(config: OtlpExporterConfig): Promise<Exporter> {
  const json = config.protocol === 'http/json';
  const serializer = json ? JsonLogsSerializer : ProtobufLogsSerializer;
  const service = new OtlpService(config, serializer);
  // One resource and one scope object for every record: the serializer groups records by identity.
  const resource = resourceFromAttributes({ 'service.name': config.serviceName, ...config.resourceAttributes });
  const scope = { name: 'logship' };
  const serialize = (records: Parameters<typeof serializer.serializeRequest>[0]) => serializer.serializeRequest(records);
  const driver: DeliveryDriver<OtlpRequest, OtlpResponse> = {
    label: service.label,
    newBuilder: () => new OtlpRequestBuilder(config, resource, scope, serialize, json, config.chunk, config.maxBytes, config.compression === 'gzip'),
    service,
    classify: (request, response) => decideOtlpResponse(response, request.count, service.label),
  };
  return batchedExporter(config, driver);
}
