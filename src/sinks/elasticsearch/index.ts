import type { ShardSpec } from '../../core/keyset.js';
import { batchedExporter } from '../delivery/writer.js';
import type { DeliveryDriver } from '../delivery/types.js';
import type { Exporter } from '../types.js';
import type { SearchExporterConfig } from './config.js';
import { BulkRequestBuilder, parseIndexPattern, type BulkRequest } from './request_builder.js';
import { decideBulkError, decideBulkResponse, type BulkResponse } from './retry.js';
import { SearchService } from './service.js';

/**
 * `_bulk` on the batched-delivery core: rows become requests of `chunk` documents or
 * `flushBytes`, whichever comes first; the row key is each document's `_id`, so a rerun after a
 * crash conflicts (409, counted as delivered) or overwrites instead of duplicating.
 */
export async function createSearchExporter(config: SearchExporterConfig): Promise<Exporter> {
  const service = await SearchService.create(config);
  const index = parseIndexPattern('indexName', config.indexName);
  const driver: DeliveryDriver<BulkRequest, BulkResponse> = {
    label: service.label,
    newBuilder: (_shard: ShardSpec) => new BulkRequestBuilder(config.opType, config.chunk, config.flushBytes, index),
    service: {
      check: () => service.check(),
      send: async (request) => (await service.bulk(request.body)) as BulkResponse,
      close: () => service.close(),
    },
    classify: (request, response) => decideBulkResponse(response, request.count, config.opType),
    classifyError: (_request, err) => decideBulkError(err, (e, what) => service.explain(e, what)),
  };
  return batchedExporter(config, driver);
}
