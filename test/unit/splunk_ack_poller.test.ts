import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HttpAnswer, HttpClient } from '../../src/sinks/delivery/http_client.js';
import { AckPoller } from '../../src/sinks/splunk/ack_poller.js';

/** HEC indexer acknowledgement: one poll per interval for every waiting ackId; time is the subject (fake timers). */

/** A HEC ack endpoint: acknowledges the ids in `acked`; records what each poll asked. */
function ackEndpoint() {
  const polls: number[][] = [];
  const acked = new Set<number>();
  let failing = false;
  const client = {
    request: async (_method: string, path: string, _headers: Record<string, string>, body?: Buffer): Promise<HttpAnswer> => {
      expect(path).toBe('/services/collector/ack?channel=ch-1');
      const ids = (JSON.parse(body!.toString()) as { acks: number[] }).acks;
      polls.push(ids);
      if (failing) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      return { status: 200, headers: {}, body: Buffer.from(JSON.stringify({ acks: Object.fromEntries(ids.map((id) => [id, acked.has(id)])) })) };
    },
  } as unknown as HttpClient;
  return { client, polls, acked, fail: (on: boolean) => (failing = on) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('AckPoller', () => {
  it('polls once per interval for all waiting ids and resolves each when acknowledged', async () => {
    vi.useFakeTimers();
    const hec = ackEndpoint();
    const poller = new AckPoller(hec.client, {}, 'ch-1', 1000, 10_000);
    const results: Record<number, boolean> = {};
    void poller.wait(1).then((v) => (results[1] = v));
    void poller.wait(2).then((v) => (results[2] = v));
    await vi.advanceTimersByTimeAsync(999);
    expect(hec.polls).toEqual([]);
    hec.acked.add(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(hec.polls).toEqual([[1, 2]]);
    expect(results).toEqual({ 2: true });
    hec.acked.add(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(hec.polls).toEqual([[1, 2], [1]]);
    expect(results).toEqual({ 1: true, 2: true });
    await vi.advanceTimersByTimeAsync(5000);
    expect(hec.polls).toHaveLength(2); // nothing waits: no more polls
  });

  it('an id not acknowledged within the timeout resolves false (the request is resent); failed polls are repeated', async () => {
    vi.useFakeTimers();
    const hec = ackEndpoint();
    const poller = new AckPoller(hec.client, {}, 'ch-1', 1000, 3000);
    let result: boolean | undefined;
    void poller.wait(7).then((v) => (result = v));
    hec.fail(true);
    await vi.advanceTimersByTimeAsync(2000);
    hec.fail(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(result).toBe(false);
    expect(hec.polls).toEqual([[7], [7], [7]]);
  });

  it('a starved event loop does not expire an id before timeout / interval polls have asked about it', async () => {
    vi.useFakeTimers();
    const hec = ackEndpoint();
    let now = 0;
    const poller = new AckPoller(hec.client, {}, 'ch-1', 1000, 3000, () => now);
    let result: boolean | undefined;
    void poller.wait(9).then((v) => (result = v));
    now = 60_000; // the loop stalled a minute: the deadline passed before the first poll
    await vi.advanceTimersByTimeAsync(2000);
    expect(result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    expect(result).toBe(false);
    expect(hec.polls).toHaveLength(3);
  });

  it('close resolves every waiting id false and stops polling', async () => {
    vi.useFakeTimers();
    const hec = ackEndpoint();
    const poller = new AckPoller(hec.client, {}, 'ch-1', 1000, 3000);
    const waiting = poller.wait(4);
    poller.close();
    expect(await waiting).toBe(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(hec.polls).toEqual([]);
  });
});
