import { checkWithRetries as checkProbe } from '../delivery/check.js';
import type { DeliveryOptions } from '../delivery/options.js';
import { decideAwsError } from './classify.js';

/**
 * Runs a pre-run check (does the log group / stream exist, do the credentials work) through the
 * delivery core's check loop, its answers read by the one AWS classifier: transient failures (an
 * unreachable endpoint, throttling, 5xx) are retried with the exporter's own attempts and
 * backoff; anything a retry cannot change fails at once, permanently. `permanent` words a
 * service's own refusals.
 */
export async function checkWithRetries<T>(options: DeliveryOptions, label: string, what: string, call: () => Promise<T>, permanent: (err: unknown) => string | null): Promise<T> {
  let result: T | undefined;
  await checkProbe(options, label, async () => {
    try {
      result = await call();
      return { kind: 'ok' };
    } catch (err) {
      return decideAwsError(err, `${label}: ${what}`, (_name, e) => {
        const fixed = permanent(e);
        return fixed === null ? null : { kind: 'fatal', reason: `${label}: ${what}: ${fixed}` };
      });
    }
  });
  return result as T;
}
