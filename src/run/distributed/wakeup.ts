import type pg from 'pg';
import { errorMessage } from '../../core/errors.js';
import { redact } from '../../core/secrets.js';
import type { Logger } from '../../core/log.js';
import { openClient, type PgTarget } from '../../source/tls.js';

/**
 * LISTEN on one channel over a dedicated connection, so that a waiter polling every
 * `queue.pollInterval` wakes as soon as there is something to see. Polling stays the fallback:
 * if the connection cannot be made or is lost, `wait` simply times out as before (logged once).
 */
export class Wakeup {
  private pending = false;
  private wake: (() => void) | null = null;

  private constructor(private readonly client: pg.Client | null, private readonly onNotify: () => void) {}

  static async listen(target: PgTarget, channel: string, log: Logger, onNotify: () => void = () => {}): Promise<Wakeup> {
    let lost = false;
    const fallBack = (err: unknown) => {
      if (lost) return;
      lost = true;
      log.warn({ channel, error: redact(errorMessage(err)) }, 'queue notifications unavailable; polling every queue.pollInterval instead');
    };
    let client: pg.Client | undefined;
    try {
      client = (await openClient(target, { application_name: 'logship-queue-listen' })).client;
      client.on('error', fallBack);
      await client.query(`LISTEN ${channel}`);
    } catch (err) {
      fallBack(err);
      await client?.end().catch(() => {});
      return new Wakeup(null, onNotify);
    }
    const wakeup = new Wakeup(client, onNotify);
    client.on('notification', () => wakeup.notified());
    return wakeup;
  }

  private notified(): void {
    this.pending = true;
    this.onNotify();
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Resolves on the next notification (or at once if one came since the last wait), else after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.pending = false;
        resolve();
      };
    });
  }

  async close(): Promise<void> {
    const wake = this.wake;
    this.wake = null;
    wake?.();
    await this.client?.end().catch(() => {});
  }
}
