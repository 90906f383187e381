import { ConfigError } from '../config/errors.js';
import { OptionReader, quote } from '../config/reader.js';
import { writesFiles, type ExporterConfig } from '../config/types.js';
import { AZURE_TYPES, parseAzureBlobExporter } from './azure_blob/config.js';
import { ELASTICSEARCH_TYPES, OPENSEARCH_TYPES, parseElasticsearchExporter, parseOpenSearchExporter } from './elasticsearch/config.js';
import { FILE_TYPES, parseFileExporter } from './file/config.js';
import { GCS_TYPES, parseGcsExporter } from './gcs/config.js';
import { checkNamesStayInside } from './naming.js';
import { S3_TYPES, parseS3Exporter } from './s3/config.js';

interface ExporterKind {
  types: string[];
  parse(r: OptionReader, id: string): ExporterConfig;
}

const KINDS: ExporterKind[] = [
  { types: FILE_TYPES, parse: parseFileExporter },
  { types: S3_TYPES, parse: parseS3Exporter },
  { types: GCS_TYPES, parse: parseGcsExporter },
  { types: AZURE_TYPES, parse: parseAzureBlobExporter },
  { types: ELASTICSEARCH_TYPES, parse: parseElasticsearchExporter },
  { types: OPENSEARCH_TYPES, parse: parseOpenSearchExporter },
];

/** Exporter types Kestra has that logship recognises but has not built yet. */
const PLANNED = [
  'io.kestra.plugin.ee.datadog.LogExporter', 'io.kestra.plugin.ee.splunk.LogExporter', 'io.kestra.plugin.ee.loki.LogExporter',
  'io.kestra.plugin.ee.opentelemetry.LogExporter', 'io.kestra.plugin.ee.aws.cloudwatch.LogExporter', 'io.kestra.plugin.ee.gcp.operationalinsights.LogExporter',
  'io.kestra.plugin.ee.azure.monitoring.LogExporter', 'io.kestra.plugin.ee.newrelic.LogExporter',
];

export function parseExporter(path: string, value: unknown, takenIds: Set<string>): ExporterConfig {
  const r = OptionReader.of(path, value);
  const type = r.string('type');
  const id = r.string('id');
  if (takenIds.has(id)) throw new ConfigError(r.at('id'), `duplicate exporter id ${quote(id)}`);
  takenIds.add(id);
  const kind = KINDS.find((k) => k.types.some((t) => t.toLowerCase() === type.toLowerCase()));
  if (!kind) {
    if (PLANNED.some((t) => t.toLowerCase() === type.toLowerCase())) {
      throw new ConfigError(r.at('type'), `not supported yet: ${quote(type).replace(/^"|"$/g, '')}`);
    }
    const known = KINDS.flatMap((k) => k.types).join(', ');
    throw new ConfigError(r.at('type'), `not supported yet: ${quote(type).replace(/^"|"$/g, '')} (supported: ${known})`);
  }
  const config = kind.parse(r, id);
  r.done();
  if (writesFiles(config)) {
    const where = config.type === 'file' ? 'the output directory' : config.type === 'azure-blob' ? 'the container' : 'the bucket';
    checkNamesStayInside((o) => r.at(o), where, config.keyTemplate, config.logFilePrefix, config.id);
  }
  return config;
}
