import type pg from 'pg';
import { rawBytesTap, type RawBytesTap } from './read_buffer_socket.js';
import type { RowBatch } from './row_batch.js';

/** Backend message types seen while a COPY OUT owns the socket. */
const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const ERROR_RESPONSE = 0x45; // 'E'
const COMMAND_COMPLETE = 0x43; // 'C'
const READY_FOR_QUERY = 0x5a; // 'Z'
const HEADER = 5; // type byte + int32 length (which counts itself)

/** Where the CopyData payload goes: bytes [start, end) of buf, valid only during the call. */
export interface CopyPayloadSink {
  pushRange(buf: Buffer, start: number, end: number): void;
  /** Batches completed by the bytes pushed so far (the sink forgets them). */
  takeReady(): RowBatch[];
  /** The last partial batch, after the stream's trailer; throws if the trailer never came. */
  end(): RowBatch | null;
}

interface PgConnection {
  stream: NodeJS.ReadableStream & { listeners(event: 'data'): ((chunk: Buffer) => void)[] };
  query(text: string): void;
}

/**
 * A pg "submittable" that runs `COPY … TO STDOUT` and frames the protocol straight off the
 * socket: each CopyData payload is handed to the sink as a byte range of the socket's own chunk.
 * pg-copy-streams cuts every message into its own Buffer and joins them again per read; at one
 * message per row that was a third of the reading thread's time in allocation and GC.
 *
 * While the COPY runs it owns the socket's bytes: through the tap of a readBufferSocket (straight
 * from its reused read buffer), or else by taking the socket's 'data' event, as pg-copy-streams
 * does. After CopyDone (or an ErrorResponse) it gives the socket back to pg with the unread bytes,
 * so pg itself parses CommandComplete / ErrorResponse and ReadyForQuery and calls the handle*
 * methods below.
 *
 * Backpressure: the socket stops reading while `highWater` batches wait for the consumer.
 */
export class CopyOutQuery {
  private connection: PgConnection | null = null;
  private pgDataHandler: ((chunk: Buffer) => void) | null = null;
  /** Set when the socket is a readBufferSocket: its chunks are one reused buffer. */
  private tap: RawBytesTap | null = null;
  /** Payload bytes of the current message still to come; -1 while between messages. */
  private remaining = -1;
  private code = 0;
  /** A message header split across socket chunks. */
  private readonly header = Buffer.alloc(HEADER);
  private headerLen = 0;
  private readonly ready: RowBatch[] = [];
  private readIndex = 0;
  private failure: Error | null = null;
  /** After a parse error or a cancel: bytes are read and dropped until the server ends the COPY. */
  private discarding = false;
  private copyDone = false;
  private settled = false;
  private paused = false;
  private wake: (() => void) | null = null;
  private readonly onData = (chunk: Buffer) => this.frame(chunk);
  private readonly onRawBytes = (bytes: Buffer): boolean => {
    this.frame(bytes);
    return !this.paused;
  };

  constructor(
    readonly text: string,
    private readonly sink: CopyPayloadSink,
    private readonly highWater = 2,
  ) {}

  // --- pg's submittable interface -------------------------------------------------------------

  submit(connection: PgConnection): void {
    this.connection = connection;
    const listeners = connection.stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`COPY OUT expects pg to own the socket's only 'data' listener (found ${listeners.length})`);
    this.pgDataHandler = listeners[0]!;
    this.tap = rawBytesTap(connection.stream) ?? null;
    if (this.tap) {
      this.tap.take(this.onRawBytes);
    } else {
      connection.stream.removeListener('data', this.pgDataHandler);
      connection.stream.on('data', this.onData);
    }
    connection.query(this.text);
  }

  handleError(err: Error): void {
    this.failure ??= err;
    // A lost connection ends here without ReadyForQuery; an ErrorResponse is followed by one.
    if (this.pgDataHandler && this.connection) this.giveBack(null);
    this.settle();
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.settle();
  }

  // --- the consumer's side --------------------------------------------------------------------

  /** The next batch, or null once the COPY has completed and every batch was taken. */
  async next(): Promise<RowBatch | null> {
    while (true) {
      if (this.failure) throw this.failure;
      if (this.readIndex < this.ready.length) {
        const batch = this.ready[this.readIndex]!;
        this.ready[this.readIndex++] = undefined as unknown as RowBatch;
        if (this.readIndex === this.ready.length) {
          this.ready.length = 0;
          this.readIndex = 0;
        }
        if (this.paused && this.ready.length - this.readIndex < this.highWater) this.resume();
        return batch;
      }
      if (this.settled) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The server has ended the COPY (completed or failed) and the connection is pg's again. */
  get ended(): boolean {
    return this.settled;
  }

  /**
   * Stops taking rows: bytes still in flight are dropped. Resolves when the server has ended the
   * COPY (the caller has asked it to cancel) and the connection is pg's again.
   */
  async discard(): Promise<void> {
    this.discarding = true;
    this.ready.length = 0;
    this.readIndex = 0;
    if (this.paused) this.resume();
    while (!this.settled) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  // --- framing --------------------------------------------------------------------------------

  private frame(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      if (this.remaining < 0) {
        let headerStart = pos;
        if (this.headerLen > 0 || len - pos < HEADER) {
          const n = Math.min(HEADER - this.headerLen, len - pos);
          chunk.copy(this.header, this.headerLen, pos, pos + n);
          this.headerLen += n;
          pos += n;
          if (this.headerLen < HEADER) return;
          this.code = this.header[0]!;
          this.remaining = this.header.readUInt32BE(1) - 4;
          this.headerLen = 0;
          headerStart = -1;
        } else {
          this.code = chunk[pos]!;
          this.remaining = chunk.readUInt32BE(pos + 1) - 4;
          pos += HEADER;
        }
        if (this.code === ERROR_RESPONSE || this.code === COMMAND_COMPLETE || this.code === READY_FOR_QUERY) {
          // pg parses these: hand back the socket with this message's header and all after it.
          const rest = headerStart >= 0 ? chunk.subarray(headerStart) : Buffer.concat([this.header, chunk.subarray(pos)]);
          this.giveBack(rest);
          return;
        }
      }
      const n = Math.min(this.remaining, len - pos);
      if (this.code === COPY_DATA && n > 0 && !this.discarding) this.payload(chunk, pos, pos + n);
      pos += n;
      this.remaining -= n;
      if (this.remaining === 0) {
        this.remaining = -1;
        if (this.code === COPY_DONE) {
          this.copyDone = true;
          this.finishRows();
          this.giveBack(chunk.subarray(pos));
          return;
        }
      }
    }
    if (!this.discarding && this.ready.length - this.readIndex >= this.highWater) this.pause();
    this.notify();
  }

  private payload(chunk: Buffer, start: number, end: number): void {
    try {
      this.sink.pushRange(chunk, start, end);
      const batches = this.sink.takeReady();
      for (let i = 0; i < batches.length; i++) this.ready.push(batches[i]!);
    } catch (err) {
      // A corrupt row: stop parsing, let the consumer see the error; it cancels the COPY.
      this.failure = err as Error;
      this.discarding = true;
    }
  }

  private finishRows(): void {
    if (this.discarding) return;
    try {
      const last = this.sink.end();
      if (last) this.ready.push(last);
    } catch (err) {
      this.failure = err as Error;
    }
  }

  /** Returns the socket to pg's protocol parser, with the bytes it has yet to see. */
  private giveBack(rest: Buffer | null): void {
    const connection = this.connection!;
    const handler = this.pgDataHandler!;
    this.pgDataHandler = null;
    if (this.tap) {
      this.tap.release();
    } else {
      connection.stream.removeListener('data', this.onData);
      connection.stream.on('data', handler);
    }
    if (this.paused) this.resume();
    // From a tap, the rest is in the reused read buffer: pg's parser keeps what it is given.
    if (rest && rest.length > 0) handler(this.tap ? Buffer.from(rest) : rest);
    this.notify();
  }

  /** A tap stops reading when onRawBytes returns false; a plain socket is paused. */
  private pause(): void {
    this.paused = true;
    if (!this.tap) this.connection!.stream.pause();
  }

  private resume(): void {
    this.paused = false;
    if (this.tap) this.tap.resume();
    else this.connection!.stream.resume();
  }

  private settle(): void {
    this.settled = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    if (wake) {
      this.wake = null;
      wake();
    }
  }
}

/** pg's types do not know submittables; this is the one cast. */
export function submitCopyOut(client: pg.Client, query: CopyOutQuery): void {
  (client as unknown as { query(q: CopyOutQuery): void }).query(query);
}
