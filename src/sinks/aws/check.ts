import { PermanentExportError } from '../../core/errors.js';
import { retrying } from '../../core/retry.js';
import type { DeliveryOptions } from '../delivery/options.js';
import { awsErrorText, isCredentialError, type AwsError } from './client_options.js';

/** A failure no retry can change, already worded. */
class Refused extends Error {}

/**
 * Runs a pre-run check (does the log group / stream exist, do the credentials work) with the
 * exporter's own attempts and backoff for transient failures (an unreachable endpoint, throttling,
 * 5xx), and fails at once, permanently, on anything a retry cannot change.
 */
export async function checkWithRetries<T>(options: DeliveryOptions, label: string, what: string, call: () => Promise<T>, permanent: (err: unknown) => string | null): Promise<T> {
  const refusal = (err: unknown): string | null => {
    const fixed = permanent(err);
    if (fixed !== null) return fixed;
    if (isCredentialError(err)) return `${awsErrorText(err)} (check accessKeyId/secretKeyId, sessionToken or roleArn)`;
    const status = (err as AwsError)?.$metadata?.httpStatusCode;
    const throttled = (err as AwsError)?.$retryable?.throttling || /Throttl|LimitExceeded/.test((err as AwsError)?.name ?? '');
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429 && !throttled) return awsErrorText(err);
    return null;
  };
  try {
    return await retrying(
      { attempts: options.maxAttempts, backoff: { minMs: options.minBackoffMs, maxMs: options.maxBackoffMs } },
      (err) => (err instanceof Refused ? { retry: false } : { retry: true }),
      async () => {
        try {
          return await call();
        } catch (err) {
          const fixed = refusal(err);
          throw fixed === null ? err : new Refused(fixed);
        }
      },
      (err, attempts) => new Error(`${label}: ${what}: ${awsErrorText(err)}; gave up after ${attempts} attempts`),
    );
  } catch (err) {
    if (err instanceof Refused) throw new PermanentExportError(`${label}: ${what}: ${err.message}`);
    throw err;
  }
}
