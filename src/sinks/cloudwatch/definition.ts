import { defineSink } from '../definition.js';
import { CLOUDWATCH_TYPES, parseCloudWatchExporter, type CloudWatchExporterConfig } from './config.js';

export const cloudwatchSink = defineSink<CloudWatchExporterConfig>({
  type: CLOUDWATCH_TYPES[0]!,
  aliases: CLOUDWATCH_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseCloudWatchExporter,
  load: async (config) => (await import('./index.js')).createCloudWatchExporter(config),
  describeTarget: (config) => `log group ${config.logGroupName}, stream ${config.logStreamName}`,
  planWarnings: async (config, window) => (await import('./plan_warnings.js')).cloudWatchPlanWarnings(config, window),
});
