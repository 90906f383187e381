import { defineSink } from '../definition.js';
import { GOOGLE_LOGGING_TYPES, parseGoogleLoggingExporter, type GoogleLoggingExporterConfig } from './config.js';

export const googleLoggingSink = defineSink<GoogleLoggingExporterConfig>({
  type: GOOGLE_LOGGING_TYPES[0]!,
  aliases: GOOGLE_LOGGING_TYPES.slice(1),
  shape: 'documents',
  // insertId + timestamp let Cloud Logging hide resent entries, but it still stores and bills
  // them: in-shard acknowledgements keep a rerun's resends to the requests in flight.
  guarantee: 'bounded-duplicates',
  parse: parseGoogleLoggingExporter,
  load: async (config) => (await import('./index.js')).createGoogleLoggingExporter(config),
  describeTarget: (config) => `projects/${config.projectId}/logs/${config.logName} (${config.endpoint}, resource ${config.resource.type})`,
});
