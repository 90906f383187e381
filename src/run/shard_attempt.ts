import { knobs } from '../core/knobs.js';
import { MessageChannel } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/secrets.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import type { DeliveryEvent } from '../sinks/delivery/types.js';
import type { ShardOutcome } from '../state/types.js';
import { fromWire, KindedError } from '../core/errors.js';
import { workerHeapLimitMb } from './worker_pool.js';
import type { MainMessage, WorkerMessage } from '../shard/channel.js';
import type { ShardTaskInput } from '../shard/export_shard.js';
import { ShardStoppedError } from '../core/errors.js';
import { type StopControl } from './stop.js';

/** What the main thread does with a running shard's messages. */
export interface ShardAttemptHooks {
  progress(shard: number, rows: number): void;
  /** Rows and bytes read since this attempt's previous progress message (its messages carry totals). */
  read?(rows: number, bytes: number): void;
  delivery?(exporterId: string, event: DeliveryEvent): void;
  /** Makes an in-shard acknowledgement durable; the worker waits for it. */
  ack(exporterId: string, ack: InShardAck): Promise<void>;
  /** Distributed mode: rejects when this attempt no longer holds its shard (asked before a part becomes visible). */
  fence?(): Promise<void>;
}

/**
 * One attempt at a shard on a worker thread, with its own progress channel (a port transfers only
 * once). Shared by a local run and a distributed worker, so both export a shard the same way.
 */
export async function attemptShardOnPool(
  pool: Piscina, input: Omit<ShardTaskInput, 'progress'>, hooks: ShardAttemptHooks, stop: StopControl,
): Promise<ShardOutcome> {
  const shard = input.shard;
  if (stop.stopping) throw new ShardStoppedError(`shard ${shard.index} not started: stopping`);
  const channel = new MessageChannel();
  const reported = { rows: 0, bytes: 0 };
  channel.port1.on('message', (m: WorkerMessage) => {
    if (m.type === 'progress') {
      hooks.progress(m.shard, m.rows);
      hooks.read?.(m.rows - reported.rows, m.bytes - reported.bytes);
      reported.rows = m.rows;
      reported.bytes = m.bytes;
    } else if (m.type === 'delivery') hooks.delivery?.(m.exporterId, m.event);
    else if (m.type === 'flush') channel.port1.postMessage({ type: 'acked', id: m.id } satisfies MainMessage);
    else if (m.type === 'fence') {
      (hooks.fence?.() ?? Promise.resolve()).then(
        () => channel.port1.postMessage({ type: 'acked', id: m.id } satisfies MainMessage),
        (err: unknown) => channel.port1.postMessage({ type: 'ack-failed', id: m.id, error: redact(errorMessage(err)) } satisfies MainMessage),
      );
    } else {
      hooks.ack(m.exporterId, m.ack).then(
        () => channel.port1.postMessage({ type: 'acked', id: m.id } satisfies MainMessage),
        (err: unknown) => channel.port1.postMessage({ type: 'ack-failed', id: m.id, error: redact(errorMessage(err)) } satisfies MainMessage),
      );
    }
  });
  let stopSent = false;
  const untrack = stop.track(() => {
    stopSent = true;
    channel.port1.postMessage({ type: 'stop' } satisfies MainMessage);
  });
  try {
    // The worker thread's own knobs module is at its defaults: it gets the main thread's.
    const task: ShardTaskInput = { ...input, progress: channel.port2, knobs: { ...knobs } };
    return await pool.run(task, { transferList: [channel.port2] });
  } catch (err) {
    // Error names do not survive the thread boundary; what we asked for, we know here. An
    // attempt told to stop is left for the next run whatever it ended with: not done, not failed.
    if (stopSent) throw new ShardStoppedError(errorMessage(err), { cause: err });
    if ((err as { code?: unknown } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      // Retried like any crash (another attempt may not meet the same peak), but said plainly.
      throw new KindedError('transient', `shard ${shard.index} (${shard.id}): its worker thread ran out of its ${workerHeapLimitMb(input.config)} MiB heap; lower source.fetchSize or the exporters' chunk (the cap grows with maxRowBytes)`, { cause: err });
    }
    throw fromWire(err);
  } finally {
    untrack();
    channel.port1.close();
  }
}
