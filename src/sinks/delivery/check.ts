import { PermanentExportError } from '../../core/errors.js';
import { backoffDelay, sleep } from '../../core/retry.js';
import { decideTransportError, type Decision } from './decision.js';
import type { DeliveryOptions } from './options.js';

/**
 * The pre-run check of a platform without a dedicated "who am I" call: `probe` sends something
 * harmless (an empty request) and classifies the answer. An unreachable or busy host is retried
 * with the exporter's own backoff and attempts, as a request would be; a wrong token fails at once.
 * The AWS checks run through it too (aws/check.ts), with the AWS classifier as their probe.
 */
export async function checkWithRetries(options: DeliveryOptions, label: string, probe: () => Promise<Decision>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let decision: Decision;
    try {
      decision = await probe();
    } catch (err) {
      decision = decideTransportError(err, label);
    }
    if (decision.kind === 'fatal') throw new PermanentExportError(withLabel(label, decision.reason));
    if (decision.kind !== 'retry') return;
    if (attempt >= options.maxAttempts) throw new Error(`${withLabel(label, decision.reason)}; gave up after ${options.maxAttempts} attempts`);
    await sleep(backoffDelay({ minMs: options.minBackoffMs, maxMs: options.maxBackoffMs }, attempt, decision.retryAfterMs));
  }
}

function withLabel(label: string, reason: string): string {
  return reason.startsWith(label) ? reason : `${label}: ${reason}`;
}
