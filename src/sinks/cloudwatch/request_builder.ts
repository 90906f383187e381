import type { RowBatch } from '../../source/row_batch.js';
import { KeyedDocument } from '../aws/keyed_document.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';
import { CLOUDWATCH_LIMITS as L } from './config.js';

export interface InputLogEvent { timestamp: number; message: string }

/** One PutLogEvents call: events in chronological order, with their row keys and exact times. */
export class PutLogEventsRequest implements DeliveryRequest {
  constructor(
    readonly events: InputLogEvent[],
    readonly keys: string[],
    readonly tsMicros: number[],
    /** Bytes as CloudWatch counts them (UTF-8 message + 26 per event). */
    readonly bytes: number,
  ) {}

  get count(): number {
    return this.events.length;
  }

  subset(items: number[]): PutLogEventsRequest {
    let bytes = 0;
    for (const i of items) bytes += Buffer.byteLength(this.events[i]!.message) + L.overheadPerEvent;
    return new PutLogEventsRequest(items.map((i) => this.events[i]!), items.map((i) => this.keys[i]!), items.map((i) => this.tsMicros[i]!), bytes);
  }

  split(): PutLogEventsRequest[] | null {
    if (this.count < 2) return null;
    const all = this.events.map((_, i) => i);
    const half = Math.ceil(this.count / 2);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: this.events[i]!.message };
  }
}

/**
 * Rows → PutLogEvents calls within CloudWatch's rules: at most `chunk` (≤ 10,000) events and
 * 1,048,576 bytes (message + 26 each), spanning less than 24 h, sorted by time. The message is
 * the row's JSON document with the row key added. A row is measured once: `fits` renders it and
 * `add` takes the rendered message.
 */
export class PutLogEventsBuilder implements RequestBuilder<PutLogEventsRequest> {
  private events: InputLogEvent[] = [];
  private keys: string[] = [];
  private ts: number[] = [];
  private bytes = 0;
  private firstMs = Infinity;
  private lastMs = -Infinity;
  private sorted = true;
  private readonly keyed: KeyedDocument;
  private readonly maxMessageBytes = L.maxBatchBytes - L.overheadPerEvent;
  /** The row `fits` last rendered, so `add` does not render it again. */
  private renderedBatch: RowBatch | null = null;
  private renderedIndex = -1;
  private renderedMessage = '';
  private renderedBytes = 0;

  constructor(private readonly maxEvents: number, keyAttribute: string) {
    this.keyed = new KeyedDocument(keyAttribute);
  }

  get count(): number {
    return this.events.length;
  }

  get full(): boolean {
    return this.events.length >= this.maxEvents;
  }

  fits(batch: RowBatch, i: number): boolean {
    this.render(batch, i);
    if (this.renderedBytes > this.maxMessageBytes) return true; // add() refuses it; it never joins a request
    const ms = Math.floor(batch.tsMicros[i]! / 1000);
    const span = Math.max(this.lastMs, ms) - Math.min(this.firstMs, ms);
    return this.bytes + this.renderedBytes + L.overheadPerEvent <= L.maxBatchBytes && span < L.maxSpanMs;
  }

  add(batch: RowBatch, i: number): string | null {
    this.render(batch, i);
    const size = this.renderedBytes;
    if (size > this.maxMessageBytes) {
      return `the message is ${size} bytes; CloudWatch Logs accepts at most ${this.maxMessageBytes} bytes per event (1,048,576 per call including 26 bytes of overhead)`;
    }
    const ms = Math.floor(batch.tsMicros[i]! / 1000);
    if (ms < this.lastMs) this.sorted = false;
    this.firstMs = Math.min(this.firstMs, ms);
    this.lastMs = Math.max(this.lastMs, ms);
    this.events.push({ timestamp: ms, message: this.renderedMessage });
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    this.bytes += size + L.overheadPerEvent;
    this.renderedBatch = null;
    return null;
  }

  take(): PutLogEventsRequest {
    let request = new PutLogEventsRequest(this.events, this.keys, this.ts, this.bytes);
    // Rows arrive in (timestamp, key) order for this destination, so this is the rare path.
    if (!this.sorted) request = request.subset(this.events.map((_, i) => i).sort((a, b) => this.ts[a]! - this.ts[b]!));
    this.events = [];
    this.keys = [];
    this.ts = [];
    this.bytes = 0;
    this.firstMs = Infinity;
    this.lastMs = -Infinity;
    this.sorted = true;
    return request;
  }

  private render(batch: RowBatch, i: number): void {
    if (this.renderedBatch === batch && this.renderedIndex === i) return;
    this.renderedBatch = batch;
    this.renderedIndex = i;
    this.renderedMessage = this.keyed.render(batch, i);
    this.renderedBytes = Buffer.byteLength(this.renderedMessage);
  }
}
