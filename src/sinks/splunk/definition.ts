import { defineSink } from '../definition.js';
import { parseSplunkExporter, SPLUNK_TYPES, type SplunkExporterConfig } from './config.js';

export const splunkSink = defineSink<SplunkExporterConfig>({
  type: SPLUNK_TYPES[0]!,
  aliases: SPLUNK_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseSplunkExporter,
  load: async (config) => (await import('./index.js')).createSplunkExporter(config),
  describeTarget: (config) => `HEC ${config.host}/services/collector/event${config.index ? ` index ${config.index}` : ''}`,
});
