import { PermanentExportError } from '../../core/errors.js';
import { retrying } from '../../core/retry.js';
import { decideTransportError, type Decision } from './decision.js';
import type { DeliveryOptions } from './options.js';

/** The check ran out of attempts on a transient failure. */
class CheckGaveUp extends Error {}

/** Carries a probe's verdict out of the retry loop. */
class CheckAnswer extends Error {
  constructor(readonly decision: Decision) {
    super(decision.kind === 'ok' ? 'ok' : decision.reason);
  }
}

/**
 * The pre-run check of a platform without a dedicated "who am I" call: `probe` sends something
 * harmless (an empty request) and classifies the answer. An unreachable or busy host is retried
 * with the exporter's own backoff and attempts, as a request would be; a wrong token fails at once.
 */
export async function checkWithRetries(options: DeliveryOptions, label: string, probe: () => Promise<Decision>): Promise<void> {
  const decisionOf = (err: unknown): Decision => (err instanceof CheckAnswer ? err.decision : decideTransportError(err, label));
  try {
    await retrying(
      { attempts: options.maxAttempts, backoff: { minMs: options.minBackoffMs, maxMs: options.maxBackoffMs } },
      (err) => {
        const d = decisionOf(err);
        return d.kind === 'retry' ? { retry: true, retryAfterMs: d.retryAfterMs } : { retry: false };
      },
      async () => {
        const d = await probe();
        if (d.kind === 'retry' || d.kind === 'fatal') throw new CheckAnswer(d);
      },
      (err, attempts) => new CheckGaveUp(`${withLabel(label, reasonOf(decisionOf(err)))}; gave up after ${attempts} attempts`),
    );
  } catch (err) {
    if (err instanceof CheckGaveUp) throw err;
    const d = decisionOf(err);
    if (d.kind === 'fatal') throw new PermanentExportError(withLabel(label, d.reason));
    // A transport error classified as anything but retry or fatal: nothing to refuse the run for.
  }
}

function reasonOf(d: Decision): string {
  return d.kind === 'ok' ? 'ok' : d.reason;
}

function withLabel(label: string, reason: string): string {
  return reason.startsWith(label) ? reason : `${label}: ${reason}`;
}
