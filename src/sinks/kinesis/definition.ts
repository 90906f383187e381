import { defineSink } from '../definition.js';
import { KINESIS_TYPES, parseKinesisExporter, type KinesisExporterConfig } from './config.js';

export const kinesisSink = defineSink<KinesisExporterConfig>({
  type: KINESIS_TYPES[0]!,
  aliases: KINESIS_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseKinesisExporter,
  load: async (config) => (await import('./index.js')).createKinesisExporter(config),
  describeTarget: (config) => `stream ${config.streamName}${config.aggregation ? ' (KPL-aggregated)' : ''}`,
});
