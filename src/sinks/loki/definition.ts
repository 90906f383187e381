import { defineSink } from '../definition.js';
import { LOKI_TYPES, parseLokiExporter, type LokiExporterConfig } from './config.js';

export const lokiSink = defineSink<LokiExporterConfig>({
  type: LOKI_TYPES[0]!,
  aliases: LOKI_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseLokiExporter,
  load: async (config) => (await import('./index.js')).createLokiExporter(config),
  describeTarget: (config) => `${config.url}/loki/api/v1/push (labels ${config.labels.map((l) => `${l.name}=${l.literal ?? `{${l.field}}`}`).join(', ')})`,
  maxShardLeadMs: (config) => config.outOfOrderWindowMs,
});
