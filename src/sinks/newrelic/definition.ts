import { redact } from '../../core/secrets.js';
import { defineSink } from '../definition.js';
import { NEWRELIC_TYPES, parseNewRelicExporter, type NewRelicExporterConfig } from './config.js';

export const newRelicSink = defineSink<NewRelicExporterConfig>({
  type: NEWRELIC_TYPES[0]!,
  aliases: NEWRELIC_TYPES.slice(1),
  shape: 'documents',
  guarantee: 'bounded-duplicates',
  parse: parseNewRelicExporter,
  load: async (config) => (await import('./index.js')).createNewRelicExporter(config),
  // `plan` prints this unredacted; basePath may come from a secret.
  describeTarget: (config) => redact(`${config.basePath}/log/v1 (logtype ${config.logtype})`),
});
