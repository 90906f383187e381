import type { Decision } from '../../src/sinks/delivery/decision.js';
import type { DeliveryOptions } from '../../src/sinks/delivery/options.js';
import type { DeadLetterSubject, DeliveryDriver, DeliveryRequest, RequestBuilder } from '../../src/sinks/delivery/types.js';
import type { RowBatch } from '../../src/source/row_batch.js';

/** A request of the stub platform: the row keys it carries, in order. */
export class StubRequest implements DeliveryRequest {
  constructor(
    readonly keys: string[],
    readonly ts: number[],
    readonly docs: string[],
  ) {}

  get count(): number {
    return this.keys.length;
  }

  get bytes(): number {
    return this.docs.reduce((s, d) => s + d.length, 0);
  }

  subset(items: number[]): StubRequest {
    return new StubRequest(items.map((i) => this.keys[i]!), items.map((i) => this.ts[i]!), items.map((i) => this.docs[i]!));
  }

  split(): StubRequest[] | null {
    if (this.count < 2) return null;
    const half = Math.ceil(this.count / 2);
    const all = this.keys.map((_, i) => i);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.ts[i]!, document: this.docs[i]! };
  }
}

/** Requests of `chunk` rows; a row whose document contains `"refuse"` is refused as too large. */
class StubBuilder implements RequestBuilder<StubRequest> {
  private keys: string[] = [];
  private ts: number[] = [];
  private docs: string[] = [];

  constructor(private readonly chunk: number) {}

  get count(): number {
    return this.keys.length;
  }

  get full(): boolean {
    return this.keys.length >= this.chunk;
  }

  add(batch: RowBatch, i: number): string | null {
    const doc = batch.doc(i).toString('utf8');
    if (doc.includes('"refuse"')) return 'too large for the stub platform';
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    this.docs.push(doc);
    return null;
  }

  take(): StubRequest {
    const r = new StubRequest(this.keys, this.ts, this.docs);
    this.keys = [];
    this.ts = [];
    this.docs = [];
    return r;
  }
}

/** How the stub platform answers a send: a decision, or a thrown error (a transport failure). */
export type StubAnswer = (request: StubRequest, call: number) => Decision | Promise<Decision>;

/**
 * A document platform for the batched-delivery core with no network: each send is answered by
 * `answer` (the response is the decision itself, so `classify` passes it through), and every
 * send is recorded, so a test sees exactly what the core sent, how often and in which order.
 */
export class StubPlatform {
  readonly sent: StubRequest[] = [];
  inFlight = 0;
  peakInFlight = 0;
  answer: StubAnswer = () => ({ kind: 'ok' });

  driver(chunk: number, extra: Partial<DeliveryDriver<StubRequest, Decision>> = {}): DeliveryDriver<StubRequest, Decision> {
    return {
      label: "stub exporter 'stub' (stub://platform)",
      newBuilder: () => new StubBuilder(chunk),
      service: {
        check: async () => {},
        send: async (request) => {
          this.sent.push(request);
          this.inFlight++;
          this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
          try {
            return await this.answer(request, this.sent.length);
          } finally {
            this.inFlight--;
          }
        },
        close: async () => {},
      },
      classify: (_request, decision) => decision,
      ...extra,
    };
  }

  /** Keys as delivered: every key of every request answered ok (a test's answer decides which those are). */
  sentKeys(): string[] {
    return this.sent.flatMap((r) => r.keys);
  }
}

export function deliveryOptions(deadLetter: string, over: Partial<DeliveryOptions> = {}): DeliveryOptions {
  return { id: 'stub', chunk: 10, concurrency: 2, maxAttempts: 5, minBackoffMs: 1, maxBackoffMs: 2, requestTimeoutMs: 60_000, deadLetter, allowDeadLetter: false, ...over };
}
