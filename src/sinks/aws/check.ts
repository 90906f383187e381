import { backoffDelay, sleep } from '../../core/retry.js';
import type { DeliveryOptions } from '../delivery/options.js';
import { PermanentExportError } from '../../core/errors.js';
import { awsErrorText, isCredentialError, type AwsError } from './client_options.js';

/**
 * Runs a pre-run check (does the log group / stream exist, do the credentials work) with the
 * exporter's own attempts and backoff for transient failures (an unreachable endpoint, throttling,
 * 5xx), and fails at once, permanently, on anything a retry cannot change.
 */
export async function checkWithRetries<T>(options: DeliveryOptions, label: string, what: string, call: () => Promise<T>, permanent: (err: unknown) => string | null): Promise<T> {
  const never = new AbortController().signal;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const fixed = permanent(err);
      if (fixed !== null) throw new PermanentExportError(`${label}: ${what}: ${fixed}`);
      if (isCredentialError(err)) throw new PermanentExportError(`${label}: ${what}: ${awsErrorText(err)} (check accessKeyId/secretKeyId, sessionToken or roleArn)`);
      const status = (err as AwsError)?.$metadata?.httpStatusCode;
      const throttled = (err as AwsError)?.$retryable?.throttling || /Throttl|LimitExceeded/.test((err as AwsError)?.name ?? '');
      if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429 && !throttled) throw new PermanentExportError(`${label}: ${what}: ${awsErrorText(err)}`);
      if (attempt >= options.maxAttempts) throw new Error(`${label}: ${what}: ${awsErrorText(err)}; gave up after ${options.maxAttempts} attempts`);
      await sleep(backoffDelay({ minMs: options.minBackoffMs, maxMs: options.maxBackoffMs }, attempt), never);
    }
  }
}
