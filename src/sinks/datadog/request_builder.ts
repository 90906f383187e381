import type { Level } from '../../source/options.js';
import { microsToTs } from '../../core/keyset.js';
import type { RowBatch } from '../../source/row_batch.js';
import { toEvent } from '../delivery/event.js';
import { JsonItemsBuilder, utf8Prefix, type EncodedEvent } from '../delivery/json_items.js';
import { DATADOG_LIMITS, type DatadogExporterConfig } from './config.js';

/** Kestra levels as Datadog statuses (Datadog's status remapper reads `status` first). */
export const DATADOG_STATUS: Record<Level, string> = { TRACE: 'debug', DEBUG: 'debug', INFO: 'info', WARN: 'warning', ERROR: 'error' };

/** Attribute set on a log whose message logship shortened to fit Datadog's 1 MB per log. */
export const TRUNCATED_ATTRIBUTE = 'logship_truncated';

/**
 * One row as a Datadog log: the document's fields as attributes (Datadog indexes nested JSON),
 * then the reserved attributes, which win over document fields of the same name: `message`,
 * `status` (from the level), `timestamp` (the source column's exact time, ISO-8601 with µs),
 * `ddsource`, `service` (the namespace unless configured), `ddtags`, `hostname`.
 */
export function encodeDatadogEvent(config: DatadogExporterConfig, batch: RowBatch, i: number, maxEventBytes = DATADOG_LIMITS.maxEventBytes): EncodedEvent {
  const event = toEvent(batch, i, config);
  const log: Record<string, unknown> = event.attributes;
  log.ddsource = config.ddsource;
  const service = config.service ?? event.fields.namespace;
  if (typeof service === 'string') log.service = service;
  if (config.hostname) log.hostname = config.hostname;
  if (config.ddtags) log.ddtags = config.ddtags;
  if (event.level) log.status = DATADOG_STATUS[event.level];
  log.timestamp = microsToTs(event.tsMicros);
  log.message = event.message;
  let json = JSON.stringify(log);
  let bytes = Buffer.byteLength(json);
  if (bytes <= maxEventBytes) return { json, bytes };
  // Datadog truncates a log over 1 MB; doing it here keeps the request within its 5 MB and
  // marks the log so the cut is visible.
  log[TRUNCATED_ATTRIBUTE] = true;
  let keep = Buffer.byteLength(event.message) - (bytes - maxEventBytes) - 32;
  for (let tries = 0; tries < 8 && keep > 0; tries++) {
    log.message = utf8Prefix(event.message, keep);
    json = JSON.stringify(log);
    bytes = Buffer.byteLength(json);
    if (bytes <= maxEventBytes) return { json, bytes };
    keep -= bytes - maxEventBytes + 32; // JSON escapes made the message longer on the wire than in UTF-8
  }
  log.message = '';
  return { refused: `log is ${Buffer.byteLength(JSON.stringify(log))} bytes even with an empty message; Datadog accepts at most ${maxEventBytes} bytes per log` };
}

export function datadogRequestBuilder(config: DatadogExporterConfig): JsonItemsBuilder {
  return new JsonItemsBuilder(
    { maxItems: config.chunk, maxBytes: DATADOG_LIMITS.maxBytes, maxItemBytes: DATADOG_LIMITS.maxEventBytes },
    (batch, i) => encodeDatadogEvent(config, batch, i),
  );
}
