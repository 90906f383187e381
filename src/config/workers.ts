import os from 'node:os';
import { ConfigError } from '../core/errors.js';

export interface WorkersChoice {
  workers: number;
  /** Why: "auto: database on this host (…) → cores ÷ 2" or "set in the config". */
  reason: string;
}

/**
 * `workers: auto` (the default). Each worker brings a PostgreSQL backend that needs about as much
 * CPU as the worker itself, so when the database shares this machine, cores ÷ 2 workers keep
 * both sides busy without contending (on 2 cores one worker was 8–25% faster than two); when it
 * runs elsewhere, every core can export.
 */
export function resolveWorkers(path: string, value: unknown, url: string | undefined, env: NodeJS.ProcessEnv = process.env, cores = os.availableParallelism()): WorkersChoice {
  if (value === undefined || value === null || value === 'auto') {
    const host = databaseHost(url, env);
    if (isLocalHost(host)) return { workers: Math.max(1, Math.floor(cores / 2)), reason: `auto: the database is on this host (${host || 'unix socket'}), so ${cores} cores ÷ 2` };
    return { workers: Math.max(1, cores), reason: `auto: the database is on another host (${host}), so one per core (${cores})` };
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 256) {
    throw new ConfigError(path, `must be auto or an integer from 1 to 256 (got ${typeof value === 'string' ? JSON.stringify(value) : String(value)})`);
  }
  return { workers: value, reason: 'set in the config' };
}

/** The host libpq would connect to: the URL's host (or its `?host=` socket directory), else PGHOST. */
export function databaseHost(url: string | undefined, env: NodeJS.ProcessEnv): string {
  if (url) {
    try {
      const u = new URL(url);
      const hostParam = u.searchParams.get('host');
      if (hostParam) return hostParam;
      return decodeURIComponent(u.hostname).replace(/^\[|\]$/g, '');
    } catch {
      return '';
    }
  }
  return env.PGHOST ?? '';
}

/** Loopback, a unix socket directory, this machine's name or one of its interface addresses. */
export function isLocalHost(host: string): boolean {
  if (host === '' || host.startsWith('/') || host === 'localhost' || host === '::1' || /^127\./.test(host)) return true;
  if (host.toLowerCase() === os.hostname().toLowerCase()) return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === host));
}
