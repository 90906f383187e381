import { ConfigError } from './errors.js';

import { cameFromSecret, redact } from './secrets.js';

/**
 * Reads one mapping of the config with its option path, so every message names the exact
 * option (`logExporters[0].maxLinesPerFile: must be a positive integer`). Unknown keys are
 * rejected: a typo silently falling back to a default is the worst config bug there is.
 */
export class OptionReader {
  private readonly seen = new Set<string>();

  constructor(
    readonly path: string,
    private readonly value: Record<string, unknown>,
  ) {}

  static of(path: string, value: unknown): OptionReader {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(path, `must be a mapping of options (got ${describe(value)})`);
    }
    return new OptionReader(path, value as Record<string, unknown>);
  }

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null;
  }

  raw(key: string): unknown {
    this.seen.add(key);
    return this.value[key];
  }

  /** Marks keys that are accepted and deliberately ignored (Kestra task plumbing, say). */
  ignore(...keys: string[]): void {
    for (const k of keys) this.seen.add(k);
  }

  string(key: string): string;
  string(key: string, fallback: string): string;
  string(key: string, fallback?: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.at(key), 'is required');
    }
    if (typeof v !== 'string' || v.length === 0) throw new ConfigError(this.at(key), `must be a non-empty string (got ${describe(v)})`);
    return v;
  }

  optionalString(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length === 0) throw new ConfigError(this.at(key), `must be a non-empty string (got ${describe(v)})`);
    return v;
  }

  integer(key: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      const range = min === 1 && max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer from ${min} to ${max}`;
      throw new ConfigError(this.at(key), `must be ${range} (got ${describe(v)})`);
    }
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.at(key), `must be true or false (got ${describe(v)})`);
    return v;
  }

  /** Case-insensitive choice; returns the canonical spelling from `choices`. */
  choice<T extends string>(key: string, choices: readonly T[], fallback: T): T;
  choice<T extends string>(key: string, choices: readonly T[], fallback: undefined): T | undefined;
  choice<T extends string>(key: string, choices: readonly T[], fallback: T | undefined): T | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    const hit = typeof v === 'string' ? choices.find((c) => c.toLowerCase() === v.toLowerCase()) : undefined;
    if (!hit) throw new ConfigError(this.at(key), `must be one of ${choices.join(', ')} (got ${describe(v)})`);
    return hit;
  }

  duration(key: string, fallback: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    return parseIsoDuration(this.at(key), v);
  }

  byteSize(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    return parseByteSize(this.at(key), v);
  }

  child(key: string): OptionReader | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    return OptionReader.of(this.at(key), v);
  }

  list(key: string): unknown[] | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new ConfigError(this.at(key), `must be a list (got ${describe(v)})`);
    return v;
  }

  /** Call last: every key the caller did not read is an error. */
  done(): void {
    const unknown = Object.keys(this.value).filter((k) => !this.seen.has(k));
    if (unknown.length > 0) {
      const known = [...this.seen].sort().join(', ');
      throw new ConfigError(this.at(unknown[0]!), `unknown option (known options here: ${known})`);
    }
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return quote(v);
  return String(v);
}

/**
 * A config value as an error quotes it: the one place values are quoted, so the rules hold
 * everywhere. A value a secret went into is never echoed; anything else is redacted BEFORE it is
 * shortened, since a cut secret no longer matches the redaction.
 */
export function quote(v: string): string {
  if (cameFromSecret(v)) return 'a value from a secret';
  const safe = redact(v);
  return JSON.stringify(safe.length > 60 ? `${safe.slice(0, 57)}...` : safe);
}

// ISO-8601 durations as Kestra writes them (P1D, PT30S, P1DT12H, P2W). Years and months are
// accepted because PostgreSQL's interval arithmetic handles them calendar-correctly.
const ISO_DURATION = /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(?:\.\d+)?S)?)?$/;

export function parseIsoDuration(path: string, value: unknown): string {
  if (typeof value !== 'string' || !ISO_DURATION.test(value)) {
    throw new ConfigError(path, `must be an ISO-8601 duration such as P1D or PT30S (got ${describe(value)})`);
  }
  return value;
}

/** Duration in milliseconds, for durations without calendar units (used for timeouts and lags shown to users). */
export function isoDurationMillis(value: string): number | undefined {
  const m = ISO_DURATION.exec(value);
  if (!m || m[1] || m[2]) return undefined;
  const n = (s: string | undefined) => (s ? parseFloat(s) : 0);
  return ((n(m[3]) * 7 + n(m[4])) * 86400 + n(m[6]) * 3600 + n(m[7]) * 60 + n(m[8])) * 1000;
}

/** Shortest and longest a duration can be in milliseconds (a month is 28-31 days, a year 365-366). */
export function isoDurationRangeMillis(value: string): [number, number] {
  const m = ISO_DURATION.exec(value);
  if (!m) return [NaN, NaN];
  const n = (s: string | undefined) => (s ? parseFloat(s) : 0);
  const fixed = ((n(m[3]) * 7 + n(m[4])) * 86400 + n(m[6]) * 3600 + n(m[7]) * 60 + n(m[8])) * 1000;
  const day = 86_400_000;
  return [fixed + (n(m[1]) * 365 + n(m[2]) * 28) * day, fixed + (n(m[1]) * 366 + n(m[2]) * 31) * day];
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i;
const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};

/** Byte sizes as integers or strings like 256MB / 64MiB. */
export function parseByteSize(path: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  if (typeof value === 'string') {
    const m = SIZE.exec(value.trim());
    if (m) {
      const bytes = Math.floor(parseFloat(m[1]!) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]!);
      if (bytes > 0) return bytes;
    }
  }
  throw new ConfigError(path, `must be a positive byte size such as 256MB or 1048576 (got ${describe(value)})`);
}

