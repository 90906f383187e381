import type { OptionReader } from '../../core/options.js';
import { LEVELS, type Level } from '../../source/options.js';
import type { RowBatch } from '../../source/row_batch.js';

/** Which document fields become the event's message and level, and where the row key goes. */
export interface EventMapping {
  messageField: string;
  levelField: string;
  /** Attribute carrying the source row's key, so consumers can dedupe after a crash and rerun. */
  keyAttribute: string;
}

export function readEventMapping(r: OptionReader): EventMapping {
  return {
    messageField: r.string('messageField', 'message'),
    levelField: r.string('levelField', 'level'),
    keyAttribute: r.string('keyAttribute', 'logship_key'),
  };
}

/** The Kestra fields every platform gets as attributes/tags (when the document has them). */
export const KESTRA_FIELDS = ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind'] as const;

/**
 * One row as the platforms see it. Built per row only by document-shaped exporters, which must
 * read the document's fields anyway; the file path never parses documents.
 */
export interface LogEvent {
  key: string;
  /** Exact event time from the source column, µs since the epoch. */
  tsMicros: number;
  /** The document's JSON text, as PostgreSQL produced it. */
  document: Buffer;
  /** The parsed document when it is a JSON object, else `{}` (the text is then the message). */
  fields: Record<string, unknown>;
  message: string;
  level: Level | undefined;
  /** Every field except the message, plus the row key under `keyAttribute`. */
  attributes: Record<string, unknown>;
}

export function levelOf(value: unknown): Level | undefined {
  if (typeof value !== 'string') return undefined;
  const upper = value.toUpperCase();
  if (upper === 'WARNING') return 'WARN';
  if (upper === 'FATAL' || upper === 'CRITICAL') return 'ERROR';
  return (LEVELS as readonly string[]).includes(upper) ? (upper as Level) : undefined;
}

export function toEvent(batch: RowBatch, i: number, mapping: EventMapping): LogEvent {
  const document = batch.doc(i);
  const text = document.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  const key = batch.key(i);
  const isObject = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  const fields = isObject ? (parsed as Record<string, unknown>) : {};
  const rawMessage = fields[mapping.messageField];
  const message = rawMessage !== undefined
    ? typeof rawMessage === 'string' ? rawMessage : JSON.stringify(rawMessage)
    : auditMessage(fields) ?? (isObject ? text : typeof parsed === 'string' ? parsed : text);
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (k !== mapping.messageField) attributes[k] = v;
  attributes[mapping.keyAttribute] = key;
  return { key, tsMicros: batch.tsMicros[i]!, document, fields, message, level: levelOf(fields[mapping.levelField]), attributes };
}

/**
 * Kestra audit entries have no message: make the one a person would write,
 * `user@x UPDATE FLOW company.team/my-flow`.
 */
function auditMessage(fields: Record<string, unknown>): string | undefined {
  const detail = fields.detail as Record<string, unknown> | undefined;
  if (!detail || typeof detail !== 'object' || typeof fields.type !== 'string') return undefined;
  const what = detail.flowId ?? detail.id;
  const where = [detail.namespace, what].filter((x) => typeof x === 'string' && x.length > 0).join('/');
  return [fields.userId, fields.type, detail.resource, where].filter((x) => typeof x === 'string' && x.length > 0).join(' ');
}

/** Attribute values as platforms with string-only tags want them. */
export function attributeText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}
