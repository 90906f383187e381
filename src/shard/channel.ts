import type { MessagePort } from 'node:worker_threads';
import type { DeliveryEvent, InShardAck } from '../sinks/delivery/types.js';

/**
 * What a shard's worker thread and the main thread say to each other over the shard's port:
 * progress (one way), and in-shard acknowledgements, which the main thread makes durable in the
 * state store before it answers, so an exporter frees a request's place only once its ack is safe.
 */
export type WorkerMessage =
  | { type: 'progress'; shard: number; rows: number; bytes: number }
  | { type: 'ack'; id: number; exporterId: string; ack: InShardAck }
  | { type: 'delivery'; exporterId: string; event: DeliveryEvent }
  | { type: 'flush'; id: number }
  /** Distributed mode: does this attempt still hold the shard? Asked before a part becomes visible. */
  | { type: 'fence'; id: number };

/**
 * What a shard worker thread posts on its parentPort once its modules are loaded (piscina passes
 * it on as the pool's 'message' event): see destroyShardPool.
 */
export const SHARD_WORKER_LOADED = 'logship:shard-worker-loaded';

export type MainMessage = { type: 'acked'; id: number } | { type: 'ack-failed'; id: number; error: string } | { type: 'stop' };

/** The worker's side: `acknowledge` resolves once the main thread stored the ack. */
export class WorkerSide {
  private next = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; what: string }>();
  /** Set when the main thread asks the shard to stop (a deadline or a signal). */
  stopRequested = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: MainMessage) => {
      if (m.type === 'stop') {
        this.stopRequested = true;
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'acked') p.resolve();
      else p.reject(new Error(p.what ? `${p.what} failed: ${m.error}` : m.error));
    });
  }

  progress(shard: number, rows: number, bytes: number): void {
    this.port.postMessage({ type: 'progress', shard, rows, bytes } satisfies WorkerMessage);
  }

  delivery(exporterId: string, event: DeliveryEvent): void {
    this.port.postMessage({ type: 'delivery', exporterId, event } satisfies WorkerMessage);
  }

  acknowledge(exporterId: string, ack: InShardAck): Promise<void> {
    return this.ask((id) => ({ type: 'ack', id, exporterId, ack }), 'storing the in-shard acknowledgement');
  }

  /** Rejects (with the main thread's reason) when this distributed attempt no longer holds its shard. */
  checkFence(): Promise<void> {
    return this.ask((id) => ({ type: 'fence', id }), '');
  }

  /**
   * Resolves once the main thread has handled every message sent before it: messages on one port
   * keep their order, and closing a port may drop what is still queued.
   */
  flush(): Promise<void> {
    return this.ask((id) => ({ type: 'flush', id }), 'flushing the shard channel');
  }

  private ask(message: (id: number) => WorkerMessage, what: string): Promise<void> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      this.port.postMessage(message(id));
    });
  }

  close(): void {
    for (const p of this.pending.values()) p.reject(new Error('shard channel closed'));
    this.pending.clear();
    this.port.close();
  }
}
