import type { ShardSpec } from '../../core/keyset.js';
import type { RowBatch } from '../../source/row_batch.js';
import type { SnapshotPiece } from '../../source/snapshots.js';
import type { Decision } from './decision.js';

/** One request as built: the events it carries can be narrowed (partial retries) and halved (413). */
export interface DeliveryRequest {
  /** Events in the request. */
  readonly count: number;
  /** Bytes as sent (after any compression), for the report. */
  readonly bytes: number;
  /** The request narrowed to some of its items, for resending only those. */
  subset(items: number[]): DeliveryRequest;
  /** Two halves, for a platform that answered 413; null for a single event. */
  split(): DeliveryRequest[] | null;
  /** What the dead-letter file records of item `i`. */
  describe(i: number): DeadLetterSubject;
}

export interface DeadLetterSubject {
  key: string;
  tsMicros: number;
  document: Buffer | string;
  /** Destination-specific fields for the record (Elasticsearch: `_index`, `_id`). */
  extra?: Record<string, unknown>;
}

/** Turns rows into requests within the platform's limits (Vector's `request_builder`). */
export interface RequestBuilder<R extends DeliveryRequest> {
  /**
   * Adds row `i`. Returns null when added, or the reason this one event can never be accepted
   * (over the platform's size cap where it does not truncate), and the core dead-letters it.
   */
  add(batch: RowBatch, i: number): string | null;
  /**
   * For platforms with hard caps (bytes, time span): false when row `i` would push the open
   * request over one, so the core sends the open request first and row `i` starts the next.
   * Deciding before `add` keeps each row in the request of the span it is acknowledged with.
   */
  fits?(batch: RowBatch, i: number): boolean;
  readonly count: number;
  /** True once the request reached a cap and must be sent before the next row. */
  readonly full: boolean;
  take(): R;
}

/** Sends a request, through the official SDK where one exists (Vector's `service`). */
export interface DeliveryService<R extends DeliveryRequest, Res> {
  /** Fails fast with a one-line error when the destination is unusable (a wrong key, no such stream). */
  check(): Promise<void>;
  send(request: R): Promise<Res>;
  close(): Promise<void>;
}

/** Everything a document-shaped destination supplies to the core. */
export interface DeliveryDriver<R extends DeliveryRequest, Res> {
  /** "datadog exporter 'dd' (https://http-intake.logs.datadoghq.com)": starts every message. */
  readonly label: string;
  newBuilder(shard: ShardSpec): RequestBuilder<R>;
  readonly service: DeliveryService<R, Res>;
  /** Classifies an answer (Vector's `retry`). */
  classify(request: R, response: Res): Decision;
  /** Classifies a thrown error; defaults to the shared transport rules (decideTransportError). */
  classifyError?(request: R, error: unknown): Decision;
  /**
   * True when `later` must not be sent until `earlier` is acknowledged (delivered, and durably
   * recorded where the run records progress): for platforms that refuse entries far behind the
   * newest one they hold (Loki), so neither a retry nor a rerun's resend lands behind a later
   * request. Without it, requests overlap up to `concurrency`.
   */
  waitsFor?(earlier: R, later: R): boolean;
}

/**
 * How far one exporter got into a shard, read in (timestamp, key) order: every row up to and
 * including (ts, key) was delivered or dead-lettered, and the dead-letter file was that long.
 */
export interface InShardAck {
  ts: string;
  key: string;
  delivered: number;
  deadLettered: number;
  deadLetterBytes: number;
  /**
   * Distributed mode: the attempt whose dead-letter file (`{exporter}-{shard}-a{n}.ndjson`) holds
   * those bytes; absent for a local run's file. A later attempt copies that prefix into its own.
   */
  deadLetterAttempt?: number;
  /**
   * The snapshots the acknowledged prefix was read in (the attempts that delivered it, each from
   * where it took over): a retry skips the prefix, so rows committed into it after those
   * snapshots can only be caught up as late rows, checked against these. Added by the shard's
   * fan-out, not the writer. Absent in acks stored before logship recorded it (see resumableAcks).
   */
  reads?: SnapshotPiece[];
}

/** What the core reports per request, for metrics (aggregated in the main thread, never per row). */
export type DeliveryEvent =
  | { kind: 'request'; outcome: 'ok' | 'retried' | 'failed' }
  | { kind: 'dead-lettered'; reason: string; count: number };

/**
 * Given to document-shaped exporters. `acknowledge` only to those with `bounded-duplicates`
 * delivery: where to resume in the shard, and how to record progress.
 */
export interface ShardDeliveryContext {
  resume?: InShardAck;
  /** Resolves once the acknowledgement is durable in the state store. */
  acknowledge?(ack: InShardAck): Promise<void>;
  observe?(event: DeliveryEvent): void;
  /** Distributed mode: the attempt this shard is exported by (file-shaped exporters fence on it). */
  fence?: AttemptFence;
}

/**
 * A distributed attempt at a shard. Its parts get attempt-scoped names, and each becomes visible
 * (renamed, upload completed) only after `check` confirmed the attempt still holds the shard.
 */
export interface AttemptFence {
  attempt: number;
  /** Rejects once a newer attempt has claimed the shard or the shard is done. */
  check(): Promise<void>;
}
