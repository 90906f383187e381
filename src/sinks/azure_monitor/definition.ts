import { defineSink } from '../definition.js';
import { AZURE_MONITOR_TYPES, parseAzureMonitorExporter, type AzureMonitorExporterConfig } from './config.js';

export const azureMonitorSink = defineSink({
  type: AZURE_MONITOR_TYPES[0]!,
  aliases: AZURE_MONITOR_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseAzureMonitorExporter,
  load: async (config: AzureMonitorExporterConfig) => (await import('./index.js')).createAzureMonitorExporter(config),
  describeTarget: (config: AzureMonitorExporterConfig) => `DCR ${config.ruleId} stream ${config.streamName}`,
});
