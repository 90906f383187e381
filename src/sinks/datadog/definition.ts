import { redact } from '../../core/secrets.js';
import { defineSink } from '../definition.js';
import { DATADOG_TYPES, parseDatadogExporter, type DatadogExporterConfig } from './config.js';

export const datadogSink = defineSink<DatadogExporterConfig>({
  type: DATADOG_TYPES[0]!,
  aliases: DATADOG_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseDatadogExporter,
  load: async (config) => (await import('./index.js')).createDatadogExporter(config),
  // `plan` prints this unredacted, and Kestra's example keeps basePath in a secret.
  describeTarget: (config) => redact(`${config.basePath}/api/v2/logs (service ${config.service ?? 'per namespace'}, ddsource ${config.ddsource})`),
});
