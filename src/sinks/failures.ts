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
