import { ConfigError } from '../core/errors.js';
import { OptionReader, quote } from '../core/options.js';
import type { ExporterConfig, FileShapedConfig } from './definition.js';
import { azureBlobSink } from './azure_blob/definition.js';
import { azureMonitorSink } from './azure_monitor/definition.js';
import { cloudwatchSink } from './cloudwatch/definition.js';
import { datadogSink } from './datadog/definition.js';
import type { SinkDefinition } from './definition.js';
import type { DeliveryOptions } from './delivery/options.js';
import { elasticsearchSink, opensearchSink } from './elasticsearch/definition.js';
import { fileSink } from './file/definition.js';
import { gcsSink } from './gcs/definition.js';
import { googleLoggingSink } from './google_logging/definition.js';
import { lokiSink } from './loki/definition.js';
import { checkNamesStayInside, templateGranularity } from './naming.js';
import { otlpSink } from './otlp/definition.js';
import { kinesisSink } from './kinesis/definition.js';
import { newRelicSink } from './newrelic/definition.js';
import { s3Sink } from './s3/definition.js';
import { splunkSink } from './splunk/definition.js';
import type { Exporter } from './types.js';

/** Every destination logship has: one line each. */
export const SINKS: readonly SinkDefinition[] = [
  fileSink,
  s3Sink,
  gcsSink,
  azureBlobSink,
  elasticsearchSink,
  opensearchSink,
  lokiSink,
  googleLoggingSink,
  splunkSink,
  otlpSink,
  cloudwatchSink,
  kinesisSink,
  datadogSink,
  newRelicSink,
  azureMonitorSink,
];

/** Kestra exporter types logship knows of but does not have. */
const PLANNED: string[] = [];

function findSink(type: string): SinkDefinition | undefined {
  const t = type.toLowerCase();
  return SINKS.find((d) => d.type.toLowerCase() === t || d.aliases.some((a) => a.toLowerCase() === t));
}

export function definitionOf(config: ExporterConfig): SinkDefinition {
  const d = findSink(config.type);
  if (!d) throw new Error(`no exporter definition for type ${config.type}`);
  return d;
}

export function parseExporter(path: string, value: unknown, takenIds: Set<string>): ExporterConfig {
  const r = OptionReader.of(path, value);
  const type = r.string('type');
  const id = r.string('id');
  if (takenIds.has(id)) throw new ConfigError(r.at('id'), `duplicate exporter id ${quote(id)}`);
  takenIds.add(id);
  const sink = findSink(type);
  if (!sink) {
    if (PLANNED.some((t) => t.toLowerCase() === type.toLowerCase())) throw new ConfigError(r.at('type'), `not supported yet: ${quote(type).replace(/^"|"$/g, '')}`);
    const known = SINKS.map((d) => d.type).join(', ');
    throw new ConfigError(r.at('type'), `unknown exporter type ${quote(type)} (logship types: ${known}, or Kestra's LogExporter class names)`);
  }
  const config = sink.parse(r, id);
  r.done();
  if (writesFiles(config)) {
    const where = config.type === 'file' ? 'the output directory' : config.type === 'azure-blob' ? 'the container' : 'the bucket';
    checkNamesStayInside((o) => r.at(o), where, config.keyTemplate, config.logFilePrefix, config.id);
  }
  return config;
}

/** Loads the destination's code on demand (the cloud SDKs cost ~0.8 s and ~80 MiB per thread). */
export function createExporter(config: ExporterConfig): Promise<Exporter> {
  return definitionOf(config).load(config);
}

/** Exporters that write files or objects (and so have names, formats and rotation). */
export function writesFiles(e: ExporterConfig): e is FileShapedConfig {
  return definitionOf(e).shape === 'files';
}

/**
 * Exporters whose names partition by event time ({date}, {hour}, the object stores' default).
 * They need each shard's rows in time order: a part stays open per partition only while rows
 * keep coming to it, so rows stored out of time order (a heap after purges, late rows) would
 * close and reopen partitions all the time, up to a file per row.
 */
export function partitionsByEventTime(e: ExporterConfig): boolean {
  return writesFiles(e) && templateGranularity(e.keyTemplate) !== null;
}

/** Exporters that send events in requests: they have dead letters and `allowDeadLetter`. */
export function deliversDocuments(e: ExporterConfig): e is ExporterConfig & DeliveryOptions {
  return definitionOf(e).shape === 'documents';
}

/** The tightest shard lead any exporter allows (see SinkDefinition.maxShardLeadMs), or undefined. */
export function maxShardLeadMs(exporters: readonly ExporterConfig[]): number | undefined {
  const leads = exporters.map((e) => definitionOf(e).maxShardLeadMs?.(e)).filter((x): x is number => x !== undefined);
  return leads.length > 0 ? Math.min(...leads) : undefined;
}

/** Exporters whose shards are read in order and acknowledged in-shard (no dedupe on their side). */
export function acksInShard(e: ExporterConfig): boolean {
  return definitionOf(e).guarantee === 'bounded-duplicates';
}
