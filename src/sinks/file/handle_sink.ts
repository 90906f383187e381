import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * A Writable that writes through a FileHandle it never closes. The part's owner (FileService)
 * syncs and closes the handle exactly once, in commit or abort. An fs.WriteStream given the
 * descriptor would close it too whenever it is destroyed (a pipeline destroys it on any error or
 * abort, whatever autoClose says), and the owner's close then closed the same number a second
 * time: by then another thread may have been given that number for its own part, which the
 * second close took away from it, or whose bytes a reused number sent to another file.
 *
 * A FileHandle also counts its operations in flight, so closing it while a write is still
 * running waits for that write instead of pulling the descriptor out from under it.
 */
export class FileHandleSink extends Writable {
  /** Bytes the file holds so far (every write completed in full). */
  bytesWritten = 0;

  constructor(
    private readonly handle: FileHandle,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  /** writev may write less than asked (a signal, a nearly full disk): write the rest until done. */
  private async writeAll(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending);
      if (bytesWritten === 0) throw new Error('write made no progress');
      this.bytesWritten += bytesWritten;
      pending = after(pending, bytesWritten);
    }
  }
}

/** The buffers' bytes past the first `n`. */
function after(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i]!.length) skip -= buffers[i++]!.length;
  const rest = buffers.slice(i);
  if (skip > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}
