import type { ErrorKind } from '../run/error_kind.js';

/**
 * A configuration or usage problem. The message always starts with the option path
 * (piscina-style) so the user can find the offending line without reading a stack trace.
 */
export class ConfigError extends Error {
  readonly path: string;
  readonly code = 'config' as const;
  constructor(path: string, message: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ConfigError';
    this.path = path;
  }
}

/** A failure while running: exit code 1, the offset stays at the last safe point. */
export class RunError extends Error {
  /** The failure's kind (src/run/error_kind.ts); unset reads as transient. */
  readonly code: ErrorKind | undefined;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorKind }) {
    super(message, options);
    this.name = 'RunError';
    this.code = options?.code;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
