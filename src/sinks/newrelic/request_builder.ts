import { microsToTs } from '../../core/keyset.js';
import type { RowBatch } from '../../source/row_batch.js';
import { toEvent } from '../delivery/event.js';
import { JsonItemsBuilder, utf8Prefix, type EncodedEvent } from '../delivery/json_items.js';
import { NEWRELIC_LIMITS, type NewRelicExporterConfig } from './config.js';

/** Attribute with the source column's exact time (ISO-8601, µs): New Relic's `timestamp` keeps milliseconds. */
export const EXACT_TIME_ATTRIBUTE = 'logship_timestamp';
/** Set on a log one of whose strings logship cut to what New Relic stores. */
export const TRUNCATED_ATTRIBUTE = 'logship_truncated';

/** The detailed payload's envelope: `[{"common":{"attributes":…},"logs":[…]}]`. */
export function newRelicEnvelope(config: NewRelicExporterConfig): { prefix: string; suffix: string } {
  const common = { logtype: config.logtype, ...config.commonAttributes };
  return { prefix: `[{"common":{"attributes":${JSON.stringify(common)}},"logs":`, suffix: '}]' };
}

/**
 * A string as New Relic stores it: the first 4,094 characters, then at most 128,000 UTF-8 bytes
 * (the `newrelic.ext.` blob); anything after that New Relic drops, so logship does not send it.
 */
export function storedPart(s: string): string {
  if (s.length <= NEWRELIC_LIMITS.storedChars) return s;
  let head = NEWRELIC_LIMITS.storedChars;
  const code = s.charCodeAt(head - 1);
  if (code >= 0xd800 && code <= 0xdbff) head--; // never split a surrogate pair
  const tail = s.slice(head);
  const kept = utf8Prefix(tail, NEWRELIC_LIMITS.blobBytes);
  return kept.length === tail.length ? s : s.slice(0, head) + kept;
}

/**
 * One row as a New Relic log: `timestamp` (ms since the epoch), `message`, and `attributes`: the
 * document's fields except its message and its own `timestamp` text (the log's timestamp says
 * it), `level` normalised to TRACE/DEBUG/INFO/WARN/ERROR, the exact time, and the row key.
 */
export function encodeNewRelicEvent(config: NewRelicExporterConfig, batch: RowBatch, i: number, maxEventBytes: number): EncodedEvent {
  const event = toEvent(batch, i, config);
  const attributes = event.attributes;
  delete attributes.timestamp;
  if (event.level) attributes.level = event.level;
  attributes[EXACT_TIME_ATTRIBUTE] = microsToTs(event.tsMicros);
  const count = Object.keys(attributes).length + 1 + Object.keys(config.commonAttributes).length;
  if (count > NEWRELIC_LIMITS.maxAttributes) {
    return { refused: `log has ${count} attributes; New Relic accepts at most ${NEWRELIC_LIMITS.maxAttributes} per log` };
  }
  let truncated = false;
  const message = storedPart(event.message);
  if (message !== event.message) truncated = true;
  for (const [k, v] of Object.entries(attributes)) {
    if (typeof v === 'string') {
      const kept = storedPart(v);
      if (kept !== v) {
        attributes[k] = kept;
        truncated = true;
      }
    }
  }
  if (truncated) attributes[TRUNCATED_ATTRIBUTE] = true;
  const json = JSON.stringify({ timestamp: Math.floor(event.tsMicros / 1000), message, attributes });
  const bytes = Buffer.byteLength(json);
  if (bytes > maxEventBytes) return { refused: `log is ${bytes} bytes after New Relic's per-value truncation; one New Relic POST carries at most ${NEWRELIC_LIMITS.maxPayloadBytes} bytes` };
  return { json, bytes };
}

export function newRelicRequestBuilder(config: NewRelicExporterConfig): JsonItemsBuilder {
  const { prefix, suffix } = newRelicEnvelope(config);
  const envelope = Buffer.byteLength(prefix) + Buffer.byteLength(suffix) + 2;
  const maxEventBytes = NEWRELIC_LIMITS.maxPayloadBytes - envelope;
  // The 1 MB applies to the body as sent, compressed or not, which is only known once it is
  // encoded: requests are built to a budget of JSON (5 MB with gzip, 2 MB without), and the
  // service halves one whose body would pass 1 MB before sending it (never sent to be refused).
  const maxBytes = config.compression === 'gzip' ? NEWRELIC_LIMITS.maxGzipSourceBytes : 2 * NEWRELIC_LIMITS.maxPayloadBytes;
  return new JsonItemsBuilder({ maxItems: config.chunk, maxBytes, maxItemBytes: maxEventBytes }, (batch, i) => encodeNewRelicEvent(config, batch, i, maxEventBytes));
}
