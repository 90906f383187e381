import { defineSink } from '../definition.js';
import { OTLP_TYPES, parseOtlpExporter, type OtlpExporterConfig } from './config.js';

export const otlpSink = defineSink<OtlpExporterConfig>({
  type: OTLP_TYPES[0]!,
  aliases: OTLP_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseOtlpExporter,
  load: async (config) => (await import('./index.js')).createOtlpExporter(config),
  describeTarget: (config) => `OTLP ${config.protocol} ${config.otlpEndpoint}`,
});
