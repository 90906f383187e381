import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { microsToTs } from '../../src/core/keyset.js';
import { PermanentExportError } from '../../src/core/errors.js';
import type { Decision } from '../../src/sinks/delivery/decision.js';
import type { DeliveryEvent, InShardAck, ShardDeliveryContext } from '../../src/sinks/delivery/types.js';
import { BatchedShardWriter } from '../../src/sinks/delivery/writer.js';
import { tempDir } from '../helpers/cli.js';
import { batchesOf, kestraRows, shardOf, type TestRow } from '../helpers/rows.js';
import { deliveryOptions, StubPlatform, type StubRequest } from '../helpers/stub_driver.js';

/**
 * The batched-delivery core (BatchedShardWriter) against a stub platform, in process: what it
 * sends, how it retries, what it acknowledges. Every document exporter runs on this core; the
 * contract suite (test/contract) then proves each real exporter on it against its fake platform.
 */

interface Deferred { resolve(d: Decision): void; promise: Promise<Decision> }
function deferred(): Deferred {
  let resolve!: (d: Decision) => void;
  const promise = new Promise<Decision>((r) => (resolve = r));
  return { resolve, promise };
}

/** Makes the platform hold every request until the test answers it; returns the held answers, in order. */
function holdAnswers(platform: StubPlatform): Deferred[] {
  const held: Deferred[] = [];
  platform.answer = () => {
    const d = deferred();
    held.push(d);
    return d.promise;
  };
  return held;
}

function setup(rows: TestRow[], over: Parameters<typeof deliveryOptions>[1] = {}, context?: ShardDeliveryContext, driverExtra = {}) {
  const dir = tempDir('writer');
  const options = deliveryOptions(path.join(dir, 'dead'), over);
  const platform = new StubPlatform();
  const writer = () => new BatchedShardWriter('stub', options, platform.driver(options.chunk, driverExtra), shardOf(rows), context);
  return { dir, options, platform, writer };
}

async function writeAll(w: BatchedShardWriter<StubRequest, Decision>, rows: TestRow[], batch = 25) {
  for (const b of batchesOf(rows, batch)) await w.write(b);
  return w.finish();
}

function deadLetters(dir: string): Record<string, unknown>[] {
  const d = path.join(dir, 'dead');
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d).flatMap((f) => fs.readFileSync(path.join(d, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('BatchedShardWriter: delivery', () => {
  it('sends every row once, in read order, in requests of chunk rows; finish reports rows and bytes', async () => {
    const rows = kestraRows(95);
    const { platform, writer } = setup(rows, { chunk: 10, concurrency: 3 });
    const result = await writeAll(writer(), rows);
    expect(platform.sentKeys()).toEqual(rows.map((r) => r.key));
    expect(platform.sent.map((r) => r.count)).toEqual([...Array(9).fill(10), 5]);
    expect(result).toMatchObject({ exporterId: 'stub', rows: 95, parts: [], removed: [], deadLettered: 0 });
    expect(result.bytes).toBe(platform.sent.reduce((s, r) => s + r.bytes, 0));
  });

  it('keeps at most `concurrency` requests in flight, and reading waits while they are', async () => {
    const rows = kestraRows(60);
    const { platform, writer } = setup(rows, { chunk: 5, concurrency: 2 });
    const held = holdAnswers(platform);
    const w = writer();
    const writing = w.write(batchesOf(rows, 60)[0]!);
    await vi.waitFor(() => expect(held).toHaveLength(2));
    let written = false;
    void writing.then(() => (written = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(platform.sent).toHaveLength(2);
    expect(written).toBe(false);
    // Each answer lets exactly one more request go.
    while (held.length > 0) held.shift()!.resolve({ kind: 'ok' });
    platform.answer = () => ({ kind: 'ok' });
    await writing;
    await w.finish();
    expect(platform.peakInFlight).toBe(2);
    expect(platform.sentKeys()).toEqual(rows.map((r) => r.key));
  });

  it('resends a request answered "retry" until it passes, and counts its rows once', async () => {
    const rows = kestraRows(30);
    const events: DeliveryEvent[] = [];
    const { platform, writer } = setup(rows, { chunk: 10, concurrency: 1 }, { observe: (e) => events.push(e) });
    platform.answer = (_r, call) => (call <= 2 ? { kind: 'retry', reason: 'HTTP 503' } : { kind: 'ok' });
    const result = await writeAll(writer(), rows);
    expect(result.rows).toBe(30);
    expect(platform.sent.map((r) => r.keys[0])).toEqual([rows[0]!.key, rows[0]!.key, rows[0]!.key, rows[10]!.key, rows[20]!.key]);
    expect(events.filter((e) => e.kind === 'request').map((e) => (e as { outcome: string }).outcome)).toEqual(['retried', 'retried', 'ok', 'ok', 'ok']);
  });

  it('waits as long as Retry-After asks, not the (shorter) backoff (fake timers)', async () => {
    vi.useFakeTimers();
    const rows = kestraRows(5);
    const { platform, writer } = setup(rows, { chunk: 10, minBackoffMs: 1, maxBackoffMs: 2 });
    platform.answer = (_r, call) => (call === 1 ? { kind: 'retry', reason: 'HTTP 429', retryAfterMs: 30_000 } : { kind: 'ok' });
    const w = writer();
    await w.write(batchesOf(rows, 5)[0]!);
    const finished = w.finish();
    await vi.advanceTimersByTimeAsync(29_999);
    expect(platform.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(platform.sent).toHaveLength(2);
    expect((await finished).rows).toBe(5);
  });

  it('gives up after maxAttempts with a retryable error naming the exporter and the last reason', async () => {
    const rows = kestraRows(5);
    const { platform, writer } = setup(rows, { maxAttempts: 3 });
    platform.answer = () => ({ kind: 'retry', reason: 'HTTP 503' });
    const failure = await writeAll(writer(), rows).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBeInstanceOf(PermanentExportError);
    expect((failure as Error).message).toBe("stub exporter 'stub' (stub://platform): HTTP 503; gave up after 3 attempts");
    expect(platform.sent).toHaveLength(3);
  });

  it('a thrown transport error is retried by the shared rules (ECONNREFUSED), then named', async () => {
    const rows = kestraRows(5);
    const { platform, writer } = setup(rows, { maxAttempts: 2 });
    platform.answer = () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    };
    await expect(writeAll(writer(), rows)).rejects.toThrow("stub exporter 'stub' (stub://platform): ECONNREFUSED; gave up after 2 attempts");
    expect(platform.sent).toHaveLength(2);
  });

  it('a fatal answer fails the shard at once with a PermanentExportError, never resent', async () => {
    const rows = kestraRows(50);
    const { platform, writer } = setup(rows, { chunk: 10, concurrency: 1, maxAttempts: 8 });
    platform.answer = () => ({ kind: 'fatal', reason: 'HTTP 403 (check the key)' });
    const failure = await writeAll(writer(), rows).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect((failure as Error).message).toBe("stub exporter 'stub' (stub://platform): HTTP 403 (check the key)");
    expect(platform.sent).toHaveLength(1);
  });

  it('halves a request answered "split" down to the event, and dead-letters a single event still refused', async () => {
    const rows = kestraRows(8);
    const victim = rows[5]!.key;
    const { dir, platform, writer } = setup(rows, { chunk: 8 });
    platform.answer = (r) => (r.keys.includes(victim) ? { kind: 'split', reason: 'HTTP 413 (request too large)' } : { kind: 'ok' });
    const result = await writeAll(writer(), rows);
    expect(platform.sent.map((r) => r.count)).toEqual([8, 4, 4, 2, 1, 1, 2]); // depth first: each half is delivered before the next
    expect(result).toMatchObject({ rows: 7, deadLettered: 1 });
    expect(deadLetters(dir)).toEqual([expect.objectContaining({ exporter: 'stub', key: victim, timestamp: microsToTs(rows[5]!.tsMicros), reason: 'HTTP 413 (request too large)' })]);
  });

  it('a partial answer resends only the failing items and dead-letters the refused ones with their status and error', async () => {
    const rows = kestraRows(10);
    const { dir, platform, writer } = setup(rows, { chunk: 10 });
    platform.answer = (_r, call) => (call === 1
      ? { kind: 'partial', retry: [2, 7], dead: [{ item: 4, status: 400, reason: 'mapper_parsing_exception', error: { type: 'mapper_parsing_exception' } }], reason: '2 documents answered 429' }
      : { kind: 'ok' });
    const result = await writeAll(writer(), rows);
    expect(platform.sent[1]!.keys).toEqual([rows[2]!.key, rows[7]!.key]);
    expect(result).toMatchObject({ rows: 9, deadLettered: 1 });
    expect(deadLetters(dir)).toEqual([expect.objectContaining({ key: rows[4]!.key, status: 400, reason: 'mapper_parsing_exception', error: { type: 'mapper_parsing_exception' } })]);
  });

  it('dead-letters a row the builder refuses, with the document, and sends the rest', async () => {
    const rows = kestraRows(12);
    rows[3]!.doc.message = 'refuse';
    rows[3]!.doc.refuse = true;
    const { dir, platform, writer } = setup(rows, { chunk: 5 });
    const result = await writeAll(writer(), rows);
    expect(platform.sentKeys()).toEqual(rows.filter((_, i) => i !== 3).map((r) => r.key));
    expect(result).toMatchObject({ rows: 11, deadLettered: 1 });
    const [record] = deadLetters(dir);
    expect(record).toMatchObject({ key: rows[3]!.key, reason: 'too large for the stub platform', document: rows[3]!.doc });
  });
});

describe('BatchedShardWriter: acknowledged prefix and resume', () => {
  it('acknowledges only the prefix whose requests all completed, in order', async () => {
    const rows = kestraRows(30);
    const acks: InShardAck[] = [];
    const { platform, writer } = setup(rows, { chunk: 10, concurrency: 3 }, { acknowledge: async (a) => void acks.push(a) });
    const held = holdAnswers(platform);
    const w = writer();
    await w.write(batchesOf(rows, 30)[0]!);
    expect(held).toHaveLength(3);
    held[1]!.resolve({ kind: 'ok' });
    await new Promise((r) => setTimeout(r, 20));
    expect(acks).toEqual([]); // the second request alone is no prefix
    held[0]!.resolve({ kind: 'ok' });
    await vi.waitFor(() => expect(acks).toHaveLength(1));
    expect(acks[0]).toEqual({ ts: microsToTs(rows[19]!.tsMicros), key: rows[19]!.key, delivered: 20, deadLettered: 0, deadLetterBytes: 0 });
    held[2]!.resolve({ kind: 'ok' });
    expect((await w.finish()).rows).toBe(30);
    expect(acks.at(-1)).toMatchObject({ key: rows[29]!.key, delivered: 30 });
  });

  it('records the dead letters of the prefix with its acknowledgement (count and bytes durable first)', async () => {
    const rows = kestraRows(20);
    const acks: InShardAck[] = [];
    const { dir, platform, writer } = setup(rows, { chunk: 10, concurrency: 1 }, { acknowledge: async (a) => void acks.push({ ...a, deadLetterBytes: a.deadLetterBytes }) });
    platform.answer = (_r, call) => (call === 1 ? { kind: 'partial', retry: [], dead: [{ item: 0, reason: 'refused' }], reason: 'one refused' } : { kind: 'ok' });
    await writeAll(writer(), rows);
    const file = fs.readdirSync(path.join(dir, 'dead'))[0]!;
    expect(acks[0]).toMatchObject({ delivered: 9, deadLettered: 1, deadLetterBytes: fs.statSync(path.join(dir, 'dead', file)).size });
  });

  it('a resumed shard skips every row at or before the acknowledged (ts, key), ties on ts decided by key', async () => {
    const rows = kestraRows(30);
    // Rows come in groups of three sharing a timestamp: resume in the middle of one.
    expect(rows[12]!.tsMicros).toBe(rows[14]!.tsMicros);
    const resume: InShardAck = { ts: microsToTs(rows[13]!.tsMicros), key: rows[13]!.key, delivered: 14, deadLettered: 0, deadLetterBytes: 0 };
    const acks: InShardAck[] = [];
    const { platform, writer } = setup(rows, { chunk: 10 }, { resume, acknowledge: async (a) => void acks.push(a) });
    const result = await writeAll(writer(), rows);
    expect(platform.sentKeys()).toEqual(rows.slice(14).map((r) => r.key));
    expect(result.rows).toBe(30);
    expect(acks.at(-1)).toMatchObject({ key: rows[29]!.key, delivered: 30 });
  });

  it('a failing acknowledgement fails the shard', async () => {
    const rows = kestraRows(30);
    const { writer } = setup(rows, { chunk: 10 }, { acknowledge: async () => { throw new Error('state store down'); } });
    await expect(writeAll(writer(), rows)).rejects.toThrow('state store down');
  });

  it('waitsFor: a request the driver orders after an unacknowledged one is not sent until that one is', async () => {
    const rows = kestraRows(30);
    const { platform, writer } = setup(rows, { chunk: 10, concurrency: 3 }, undefined, { waitsFor: () => true });
    const held = holdAnswers(platform);
    const w = writer();
    const writing = w.write(batchesOf(rows, 30)[0]!);
    await vi.waitFor(() => expect(held).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 20));
    expect(platform.sent).toHaveLength(1);
    held[0]!.resolve({ kind: 'ok' });
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]!.resolve({ kind: 'ok' });
    await writing;
    await vi.waitFor(() => expect(held).toHaveLength(3));
    held[2]!.resolve({ kind: 'ok' });
    await w.finish();
    expect(platform.peakInFlight).toBe(1);
  });

  it('abort cuts a Retry-After wait short: nothing more is sent', async () => {
    const rows = kestraRows(5);
    const { platform, writer } = setup(rows);
    platform.answer = () => ({ kind: 'retry', reason: 'HTTP 429', retryAfterMs: 120_000 });
    const w = writer();
    await w.write(batchesOf(rows, 5)[0]!);
    const finished = w.finish().catch((e: unknown) => e);
    await vi.waitFor(() => expect(platform.sent).toHaveLength(1));
    await w.abort();
    expect(await finished).toEqual(new Error('aborted'));
    expect(platform.sent).toHaveLength(1);
  });
});
