/** A running shard told to stop; not a failure: the shard is simply left for the next run. */
export class ShardStoppedError extends Error {
  override readonly name = 'ShardStoppedError';
}

export class CorruptRowError extends Error {
  override readonly name = 'CorruptRowError';
  readonly code = 'corrupt-row' as const;
}

/**
 * What kind of failure an error is, as an explicit `code` field. The kind decides whether a shard
 * is retried (core/retry.ts) and which exit code the CLI returns. It is a plain string field,
 * not a class or an `error.name`, because errors cross the worker-thread boundary by structured
 * cloning, which keeps only `message` (and `name` for built-in error types) of an Error: a
 * custom name such as 'CorruptRowError' arrives as 'Error'. `toWire`/`fromWire` carry it across.
 */
export const ERROR_KINDS = ['config', 'permanent', 'corrupt-row', 'source-unavailable', 'transient'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Meaning of each kind, in words for docs and code review:
 *  - config: the configuration or the command line is wrong; nothing a rerun changes.
 *  - permanent: a destination refused for good (401/403, missing bucket); retrying cannot help.
 *  - corrupt-row: a source row cannot be exported as it is (NULL body, bad bytes).
 *  - source-unavailable: no session with the source database (refused, DNS, auth, too many connections).
 *  - transient: anything else; worth retrying (5xx, throttling, resets, timeouts). */
const KIND_SET: ReadonlySet<string> = new Set(ERROR_KINDS);

/** An error that states its kind. Also what `fromWire` rebuilds on the main thread. */
export class KindedError extends Error {
  readonly code: ErrorKind;
  constructor(code: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KindedError';
    this.code = code;
  }
}

/** The error's kind: its `code` when that is one of ours, else transient (the safe default to retry). */
export function kindOf(err: unknown): ErrorKind {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && KIND_SET.has(code) ? (code as ErrorKind) : 'transient';
}

/** Tags an existing error (a library's, say) with a kind, keeping its message and stack. */
export function withKind<E extends Error>(err: E, code: ErrorKind): E & { code: ErrorKind } {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, configurable: true, writable: true });
  return err as E & { code: ErrorKind };
}

/** What a worker throws across the thread boundary: a plain object, which structured cloning keeps whole. */
export interface WireError {
  logshipError: true;
  code: ErrorKind;
  message: string;
}

export function toWire(err: unknown, message: string): WireError {
  return { logshipError: true, code: kindOf(err), message };
}

/** Rebuilds a worker's error on the main thread; errors that are not ours (a crashed thread) pass through. */
export function fromWire(err: unknown): unknown {
  const w = err as Partial<WireError> | null;
  if (w && typeof w === 'object' && w.logshipError === true && typeof w.message === 'string') {
    return new KindedError(kindOf(w), w.message);
  }
  return err;
}

/** Exit codes a scheduler can act on (README "Exit codes"). */
export const EXIT = { ok: 0, failed: 1, config: 2, deadLettered: 3, sourceUnavailable: 4 } as const;

export function exitCodeOf(err: unknown): number {
  const kind = kindOf(err);
  if (kind === 'config') return EXIT.config;
  if (kind === 'source-unavailable') return EXIT.sourceUnavailable;
  return EXIT.failed;
}

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
  /** The failure's kind (ErrorKind above); unset reads as transient. */
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

/** A failure no retry can fix (403, a missing bucket, a wrong password): it fails the run fast. */
export class PermanentExportError extends Error {
  override readonly name = 'PermanentExportError';
  readonly code = 'permanent' as const;
}

/** Throttling, timeouts and server errors pass; other 4xx answers will not change on retry. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The error for an HTTP failure: permanent for a non-transient 4xx, retryable otherwise. */
export function httpFailure(status: number | undefined, message: string): Error {
  return status !== undefined && status >= 400 && status < 500 && !isTransientStatus(status) ? new PermanentExportError(message) : new Error(message);
}

