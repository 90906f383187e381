import { checkWritableLocation } from '../../core/fs_checks.js';
import { ConfigError } from '../../core/errors.js';
import { OptionReader } from '../../core/options.js';
import { isoDurationMillis } from '../../core/options.js';

/** Options every document-shaped exporter shares, owned by the batched-delivery core. */
export interface DeliveryOptions {
  id: string;
  /** Events per request (Kestra's name); the platform's own caps on bytes and events also apply. */
  chunk: number;
  /** Requests in flight per worker thread; reading pauses while they are all busy. */
  concurrency: number;
  /** Attempts per request, and per item that keeps failing inside partially accepted requests. */
  maxAttempts: number;
  /** Full-jitter exponential backoff between attempts, from `minBackoffMs` up to `maxBackoffMs`. */
  minBackoffMs: number;
  maxBackoffMs: number;
  requestTimeoutMs: number;
  /** Directory of dead-letter NDJSON files, one per shard and exporter. */
  deadLetter: string;
  /** Exit 0 instead of 3 when events were dead-lettered. */
  allowDeadLetter: boolean;
}

export interface DeliveryDefaults {
  chunk: number;
  /** The platform's hard cap on events per request; `chunk` may not exceed it. */
  maxChunk: number;
  concurrency?: number;
  maxAttempts?: number;
}

function millis(r: OptionReader, key: string, fallback: string): number {
  const ms = isoDurationMillis(r.duration(key, fallback));
  if (ms === undefined || ms <= 0) throw new ConfigError(r.at(key), `must be a positive duration in days, hours, minutes or seconds (such as ${fallback})`);
  return ms;
}

export function readDeliveryOptions(r: OptionReader, id: string, d: DeliveryDefaults): DeliveryOptions {
  const options: DeliveryOptions = {
    id,
    chunk: r.integer('chunk', d.chunk, 1, d.maxChunk),
    concurrency: r.integer('concurrency', d.concurrency ?? 4, 1, 64),
    maxAttempts: r.integer('maxAttempts', d.maxAttempts ?? 8, 1, 50),
    minBackoffMs: millis(r, 'minBackoff', 'PT0.1S'),
    maxBackoffMs: millis(r, 'maxBackoff', 'PT20S'),
    requestTimeoutMs: millis(r, 'requestTimeout', 'PT60S'),
    deadLetter: checkedDirectory(r, 'deadLetter', './logship-dead-letter'),
    allowDeadLetter: r.boolean('allowDeadLetter', false),
  };
  if (options.maxBackoffMs < options.minBackoffMs) throw new ConfigError(r.at('maxBackoff'), 'must not be shorter than minBackoff');
  return options;
}

/** Optional http(s) URL option. */
export function httpUrl(r: OptionReader, key: string, fallback?: string): string {
  const v = fallback === undefined ? r.string(key) : r.string(key, fallback);
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(r.at(key), `must be an http:// or https:// URL (got ${JSON.stringify(v)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(r.at(key), `must be an http:// or https:// URL (got ${JSON.stringify(v)})`);
  return v.replace(/\/+$/, '');
}

/** A mapping of header names to string values. */
export function stringMap(r: OptionReader, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = r.raw(key);
  if (raw === undefined || raw === null) return out;
  const child = OptionReader.of(r.at(key), raw);
  for (const k of Object.keys(raw as object)) out[k] = child.string(k);
  child.done();
  return out;
}

/** A directory option, refused at load time where files can never be created (/proc, /sys…). */
function checkedDirectory(r: OptionReader, key: string, fallback: string): string {
  const dir = r.string(key, fallback);
  checkWritableLocation(r.at(key), dir);
  return dir;
}
