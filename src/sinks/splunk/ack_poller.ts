import type { HttpClient } from '../delivery/http_client.js';

interface Waiter {
  deadline: number;
  /** Polls that asked about this ackId. */
  asked: number;
  resolve: (acked: boolean) => void;
}

/**
 * Indexer acknowledgement on one HEC data channel. Every accepted request's `ackId` waits here;
 * one poll of `/services/collector/ack` per interval asks about all of them at once (HEC's
 * recommended pattern), and each resolves true when acknowledged, or false once `timeoutMs`
 * passed without it (the request is then resent: HEC may have lost it). Expiry also needs
 * `timeoutMs / intervalMs` polls to have asked: a starved event loop that polled late must not
 * declare acknowledged requests lost (and resend them as duplicates).
 */
export class AckPoller {
  private readonly waiting = new Map<number, Waiter>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly minPolls: number;

  constructor(
    private readonly client: HttpClient,
    private readonly headers: Record<string, string>,
    private readonly channel: string,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.minPolls = Math.max(1, Math.ceil(timeoutMs / intervalMs));
  }

  wait(ackId: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.waiting.set(ackId, { deadline: this.now() + this.timeoutMs, asked: 0, resolve });
      this.schedule();
    });
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiting.values()) w.resolve(false);
    this.waiting.clear();
  }

  private schedule(): void {
    if (this.timer || this.polling || this.waiting.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, this.intervalMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    const ids = [...this.waiting.keys()];
    for (const w of this.waiting.values()) w.asked++;
    try {
      const answer = await this.client.request('POST', `/services/collector/ack?channel=${encodeURIComponent(this.channel)}`, this.headers, Buffer.from(JSON.stringify({ acks: ids })));
      if (answer.status === 200) {
        const acks = (JSON.parse(answer.body.toString('utf8')) as { acks?: Record<string, boolean> }).acks ?? {};
        for (const id of ids) {
          if (acks[String(id)] === true) {
            this.waiting.get(id)?.resolve(true);
            this.waiting.delete(id);
          }
        }
      }
      // A failed poll (busy, a reset) is simply repeated at the next interval until the deadlines.
    } catch {
      // as above
    } finally {
      this.polling = false;
    }
    const now = this.now();
    for (const [id, w] of this.waiting) {
      if (now >= w.deadline && w.asked >= this.minPolls) {
        w.resolve(false);
        this.waiting.delete(id);
      }
    }
    this.schedule();
  }
}
