import { tsToMicros } from '../../core/keyset.js';
import type { ShardSpec } from '../../core/keyset.js';
import { defineSink } from '../definition.js';
import { ELASTICSEARCH_TYPES, OPENSEARCH_TYPES, parseElasticsearchExporter, parseOpenSearchExporter, type SearchExporterConfig } from './config.js';
import { parseIndexPattern } from './request_builder.js';

const firstIndex = (config: SearchExporterConfig, shard: ShardSpec) => `index ${parseIndexPattern('indexName', config.indexName).render(tsToMicros(shard.lo.ts))}`;
const load = async (config: SearchExporterConfig) => (await import('./index.js')).createSearchExporter(config);

export const elasticsearchSink = defineSink({
  type: ELASTICSEARCH_TYPES[0]!,
  aliases: ELASTICSEARCH_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'idempotent',
  parse: parseElasticsearchExporter,
  load,
  describeTarget: firstIndex,
});

export const opensearchSink = defineSink({
  type: OPENSEARCH_TYPES[0]!,
  aliases: OPENSEARCH_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'idempotent',
  parse: parseOpenSearchExporter,
  load,
  describeTarget: firstIndex,
});
