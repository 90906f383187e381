import { ConfigError } from './errors.js';
import { describe } from './reader.js';

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
