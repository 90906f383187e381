import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

/** Input bytes per gzip member (up to twice that from one large chunk): large enough that the lost 32 KiB of history costs ~nothing. */
const BLOCK_BYTES = 1024 * 1024;
/** Members compressing at once on libuv's pool (the CLI sizes it to 16 threads). */
const IN_FLIGHT = 4;
/**
 * zlib's output buffer per member. At zlib's default of 16 KiB, a member of NDJSON logs (~10:1)
 * took ~11 trips between the pool thread and the event loop, each a thread wake-up and a new
 * Buffer; 256 KiB holds such a member's output in one.
 */
const MEMBER_OUTPUT_CHUNK_BYTES = 256 * 1024;

/**
 * gzip as pigz does it: the input is cut into 1 MiB blocks that deflate in parallel on libuv's
 * thread pool, and each becomes a gzip member, written in order. A file of concatenated members is
 * one valid gzip file (RFC 1952 §2.2) that gunzip, zlib, Python, Java's GZIPInputStream, Spark and
 * Athena read whole. One zlib stream deflates one chunk at a time, so it left a core idle while the
 * database and the worker waited on it.
 */
export class ParallelGzip extends Transform {
  private block: Buffer[] = [];
  private blockBytes = 0;
  /** Members in input order; each settles to its compressed bytes. */
  private readonly pending: Promise<Buffer>[] = [];
  private members = 0;

  constructor(private readonly level: number) {
    super({ readableHighWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    // A chunk of at least a block (a batch's NDJSON is ~2 MB) deflates from its own bytes, in
    // members of one to two blocks: gathering it into 1 MiB blocks first copied every byte.
    while (this.blockBytes === 0 && chunk.length - at >= BLOCK_BYTES) {
      const take = chunk.length - at < 2 * BLOCK_BYTES ? chunk.length - at : BLOCK_BYTES;
      this.block.push(chunk.subarray(at, at + take));
      this.blockBytes = take;
      at += take;
      this.startMember();
    }
    while (at < chunk.length) {
      const take = Math.min(BLOCK_BYTES - this.blockBytes, chunk.length - at);
      this.block.push(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
      this.blockBytes += take;
      at += take;
      if (this.blockBytes === BLOCK_BYTES) this.startMember();
    }
    this.drainTo(IN_FLIGHT - 1).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    // No input still makes a valid (empty) gzip file, as one zlib stream would.
    if (this.blockBytes > 0 || this.members === 0) this.startMember();
    this.drainTo(0).then(() => done(), done);
  }

  private startMember(): void {
    const input = this.block.length === 1 ? this.block[0]! : Buffer.concat(this.block, this.blockBytes);
    this.block = [];
    this.blockBytes = 0;
    this.members++;
    const member = new Promise<Buffer>((resolve, reject) => zlib.gzip(input, { level: this.level, chunkSize: MEMBER_OUTPUT_CHUNK_BYTES }, (err, out) => (err ? reject(err) : resolve(out))));
    // Awaited in order later; a failure before its turn must not count as unhandled meanwhile.
    member.catch(() => {});
    this.pending.push(member);
  }

  /** Pushes finished members, in order, until at most `left` are still compressing. */
  private async drainTo(left: number): Promise<void> {
    while (this.pending.length > left) this.push(await this.pending.shift()!);
  }
}
