import { microsToTs, tsToMicros } from '../../core/keyset.js';
import type { ShardSpec } from '../../core/keyset.js';
import type { RowBatch } from '../../source/row_batch.js';
import { PermanentExportError } from '../../core/errors.js';
import type { Exporter, ExporterShardResult, ShardWriter } from '../types.js';
import { backoffDelay, sleep } from '../../core/retry.js';
import { DeadLetterFile } from './dead_letters.js';
import { decideTransportError, type Decision } from './decision.js';
import type { DeliveryOptions } from './options.js';
import type { DeadLetterSubject, DeliveryEvent, DeliveryDriver, DeliveryRequest, InShardAck, RequestBuilder, ShardDeliveryContext } from './types.js';

/**
 * The rows one request covers, in read order. Rows the builder refused (too large to ever send)
 * belong to the span they were read in, so the acknowledged prefix passes them only together.
 */
interface Span {
  lastTsMicros: number;
  lastKey: string;
  delivered: number;
  done: boolean;
  /** What was sent for the span (null: only refused rows), for drivers that order requests. */
  request: DeliveryRequest | null;
  /** Dead letters of this span, written to the file when the prefix passes the span. */
  dead: { record: Record<string, unknown>; document: Buffer | string }[];
}

/**
 * Delivers one shard to one document-shaped destination: rows become requests within the
 * platform's limits, up to `concurrency` in flight (reading waits while they are), each request
 * retried per its classification with full-jitter backoff, failed items alone resent, refused
 * ones dead-lettered (streamed to disk as the acknowledged prefix passes them). With a delivery context, the prefix of the shard whose
 * requests all completed is acknowledged as it grows, and a resumed shard skips it.
 */
export class BatchedShardWriter<R extends DeliveryRequest, Res> implements ShardWriter {
  private readonly builder: RequestBuilder<R>;
  private readonly deadLetters: DeadLetterFile;
  private readonly abort$ = new AbortController();
  private failure: unknown = null;
  /** Dispatched spans whose acknowledgement is not yet durable, oldest first. */
  private readonly outstanding: Span[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private capacityWaiters: (() => void)[] = [];
  private acks: Promise<void> = Promise.resolve();
  private span: Span | null = null;
  private delivered: number;
  private bytes = 0;
  /** Resume point: rows at or before it were confirmed by an earlier attempt. */
  private skipTs: number;
  private skipKey: Buffer | null;

  constructor(
    private readonly exporterId: string,
    private readonly options: DeliveryOptions,
    private readonly driver: DeliveryDriver<R, Res>,
    shard: ShardSpec,
    private readonly context: ShardDeliveryContext | undefined,
  ) {
    this.builder = driver.newBuilder(shard);
    const resume = context?.resume;
    this.deadLetters = new DeadLetterFile(
      options.deadLetter, exporterId, shard.id,
      resume ? { bytes: resume.deadLetterBytes, count: resume.deadLettered, attempt: resume.deadLetterAttempt } : undefined,
      context?.fence?.attempt,
    );
    this.delivered = resume?.delivered ?? 0;
    this.skipTs = resume ? tsToMicros(resume.ts) : -Infinity;
    this.skipKey = resume ? Buffer.from(resume.key) : null;
  }

  async write(batch: RowBatch): Promise<void> {
    if (this.failure) throw this.failure;
    for (let i = 0; i < batch.count; i++) {
      if (this.skipKey !== null) {
        if (this.confirmedEarlier(batch, i)) continue;
        this.skipKey = null; // rows arrive in order: once past the prefix, stay past it
      }
      if (this.builder.count > 0 && this.builder.fits?.(batch, i) === false) await this.dispatch();
      const refused = this.builder.add(batch, i);
      const span = (this.span ??= { lastTsMicros: 0, lastKey: '', delivered: 0, done: false, request: null, dead: [] });
      span.lastTsMicros = batch.tsMicros[i]!;
      span.lastKey = batch.key(i);
      if (refused !== null) {
        this.deadLetter(span, { key: span.lastKey, tsMicros: span.lastTsMicros, document: batch.doc(i) }, refused);
        this.observe({ kind: 'dead-lettered', reason: 'too_large', count: 1 });
      }
      if (this.builder.full) await this.dispatch();
    }
  }

  async finish(): Promise<ExporterShardResult> {
    if (this.span) await this.dispatch();
    await Promise.allSettled(this.inflight);
    if (this.failure) throw this.failure;
    await this.acks;
    if (this.failure) throw this.failure;
    // Resumed from another attempt's file and acknowledged nothing since: the stored ack still
    // names that file. Restate it naming this attempt's copy (fenced) before that file goes.
    const resume = this.context?.resume;
    if (resume && this.context?.acknowledge && !this.deadLetters.acknowledgedOwn) await this.acknowledge(resume.ts, resume.key, this.delivered);
    await this.deadLetters.finish();
    return { exporterId: this.exporterId, rows: this.delivered, bytes: this.bytes, parts: [], removed: [], deadLettered: this.deadLetters.count };
  }

  async abort(): Promise<void> {
    this.failure ??= new Error('aborted');
    this.abort$.abort();
    this.wake();
    await Promise.allSettled(this.inflight);
    await this.acks.catch(() => {});
    await this.deadLetters.abort();
  }

  private observe(event: DeliveryEvent): void {
    this.context?.observe?.(event);
  }

  /** (ts, key) ≤ the resume point; keys compare byte-wise, as the read's COLLATE "C" orders them. */
  private confirmedEarlier(batch: RowBatch, i: number): boolean {
    const ts = batch.tsMicros[i]!;
    if (ts !== this.skipTs) return ts < this.skipTs;
    const start = i === 0 ? 0 : batch.keyEnds[i - 1]!;
    return Buffer.compare(batch.keyBytes.subarray(start, batch.keyEnds[i]!), this.skipKey!) <= 0;
  }

  private async dispatch(): Promise<void> {
    const span = this.span!;
    this.span = null;
    const request = this.builder.count > 0 ? this.builder.take() : null;
    // Bounded duplicates: at most `concurrency` spans are sent but not durably acknowledged.
    while (!this.failure && (this.outstanding.length >= this.options.concurrency || this.mustWait(request))) await new Promise<void>((r) => this.capacityWaiters.push(r));
    if (this.failure) throw this.failure;
    span.request = request;
    this.outstanding.push(span);
    if (request === null) {
      span.done = true; // only refused rows: nothing to send
      this.advance();
      return;
    }
    this.bytes += request.bytes;
    const p: Promise<void> = this.deliver(request, span)
      .then(() => {
        span.done = true;
        this.advance();
      })
      .catch((err: unknown) => {
        this.failure ??= err;
        this.abort$.abort();
        this.wake();
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /**
   * True while an earlier request the driver says `request` must follow is not yet acknowledged:
   * sent, or delivered but not durably recorded, so a rerun after a crash could resend it.
   */
  private mustWait(request: R | null): boolean {
    const waitsFor = this.driver.waitsFor;
    return request !== null && waitsFor !== undefined && this.outstanding.some((s) => s.request !== null && waitsFor(s.request as R, request));
  }

  /** Sends until every item is accepted or dead-lettered; throws when a retry cannot help or attempts run out. */
  private async deliver(request: DeliveryRequest, span: Span): Promise<void> {
    let pending = request;
    for (let attempt = 1; ; attempt++) {
      if (this.failure) throw this.failure;
      let decision: Decision;
      try {
        const response = await this.driver.service.send(pending as R);
        decision = this.driver.classify(pending as R, response);
      } catch (err) {
        decision = this.driver.classifyError?.(pending as R, err) ?? decideTransportError(err, this.driver.label);
      }
      this.observe({ kind: 'request', outcome: requestOutcome(decision) });
      switch (decision.kind) {
        case 'ok':
          span.delivered += pending.count;
          return;
        case 'fatal':
          throw new PermanentExportError(prefixed(this.driver.label, decision.reason));
        case 'split': {
          const halves = pending.split();
          if (!halves) {
            this.deadLetter(span, pending.describe(0), decision.reason);
            this.observe({ kind: 'dead-lettered', reason: 'too_large', count: 1 });
            return;
          }
          for (const half of halves) await this.deliver(half, span);
          return;
        }
        case 'partial': {
          for (const d of decision.dead) {
            this.deadLetter(span, pending.describe(d.item), d.reason, d.error, d.status);
            this.observe({ kind: 'dead-lettered', reason: d.code ?? (d.status !== undefined ? `status_${d.status}` : 'rejected'), count: 1 });
          }
          span.delivered += pending.count - decision.retry.length - decision.dead.length;
          if (decision.retry.length === 0) return;
          pending = pending.subset(decision.retry);
          break;
        }
        case 'retry':
          break;
      }
      if (attempt >= this.options.maxAttempts) {
        this.observe({ kind: 'request', outcome: 'failed' });
        const what = decision.kind === 'partial' ? `${pending.count} events still failing (${decision.reason})` : decision.reason;
        throw new Error(`${prefixed(this.driver.label, what)}; gave up after ${this.options.maxAttempts} attempts`);
      }
      await sleep(backoffDelay({ minMs: this.options.minBackoffMs, maxMs: this.options.maxBackoffMs }, attempt, decision.retryAfterMs), this.abort$.signal);
    }
  }

  private deadLetter(span: Span, subject: DeadLetterSubject, reason: string, error?: unknown, status?: number): void {
    const record: Record<string, unknown> = { exporter: this.exporterId, key: subject.key, timestamp: microsToTs(subject.tsMicros), ...subject.extra };
    if (status !== undefined) record.status = status;
    record.reason = reason;
    if (error !== undefined) record.error = error;
    span.dead.push({ record, document: subject.document });
  }

  /**
   * Moves the acknowledged prefix over the finished spans at the head. Spans keep their place in
   * `outstanding` until their acknowledgement is durable, so at most `concurrency` requests'
   * events can be resent after a crash. Runs serialised on one chain, so acks are written in order.
   */
  private advance(): void {
    this.acks = this.acks
      .then(async () => {
        let n = 0;
        while (n < this.outstanding.length && this.outstanding[n]!.done) n++;
        if (n === 0) return;
        const last = this.outstanding[n - 1]!;
        let delivered = this.delivered;
        for (let k = 0; k < n; k++) {
          const span = this.outstanding[k]!;
          delivered += span.delivered;
          for (const d of span.dead) this.deadLetters.append(d.record, d.document);
          span.dead = [];
        }
        if (this.context?.acknowledge) await this.acknowledge(microsToTs(last.lastTsMicros), last.lastKey, delivered);
        this.delivered = delivered;
        this.outstanding.splice(0, n);
      })
      .catch((err: unknown) => {
        this.failure ??= err;
        this.abort$.abort();
      })
      .finally(() => this.wake());
  }

  /** Stores the acknowledged prefix, its dead letters durable first and the file that holds them named. */
  private async acknowledge(ts: string, key: string, delivered: number): Promise<void> {
    await this.deadLetters.sync();
    // Before the call: the ack may be stored even if its answer is lost, so the file keeps this length.
    this.deadLetters.offered();
    const ack: InShardAck = { ts, key, delivered, deadLettered: this.deadLetters.count, deadLetterBytes: this.deadLetters.bytes };
    if (this.deadLetters.attempt !== undefined) ack.deadLetterAttempt = this.deadLetters.attempt;
    await this.context!.acknowledge!(ack);
  }

  private wake(): void {
    const waiters = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const w of waiters) w();
  }
}

/** A request is `ok` when nothing of it is sent again (dead-lettered items are counted apart). */
function requestOutcome(d: Decision): 'ok' | 'retried' | 'failed' {
  if (d.kind === 'ok' || (d.kind === 'partial' && d.retry.length === 0)) return 'ok';
  return d.kind === 'fatal' ? 'failed' : 'retried';
}

function prefixed(label: string, reason: string): string {
  return reason.startsWith(label) ? reason : `${label}: ${reason}`;
}

/** An exporter whose shards go through the batched-delivery core. */
export function batchedExporter<R extends DeliveryRequest, Res>(options: DeliveryOptions, driver: DeliveryDriver<R, Res>): Exporter {
  return {
    id: options.id,
    check: () => driver.service.check(),
    openShard: (shard, _table, context) => new BatchedShardWriter(options.id, options, driver, shard, context),
    close: () => driver.service.close(),
  };
}
