import type { RowBatch } from '../../source/row_batch.js';

const OPEN = 0x7b;
const CLOSE = 0x7d;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The row's JSON document with the row key added under `keyAttribute`, so consumers can drop the
 * duplicates a crash and rerun may leave (neither CloudWatch nor Kinesis dedupes). A JSON object
 * gets the member appended (one string concatenation, no parse); any other document is wrapped
 * as `{"message": <document>, "<keyAttribute>": key}`.
 */
export class KeyedDocument {
  private readonly member: string;

  constructor(keyAttribute: string) {
    this.member = `${JSON.stringify(keyAttribute)}:`;
  }

  render(batch: RowBatch, i: number): string {
    const doc = batch.doc(i);
    const key = JSON.stringify(batch.key(i));
    let end = doc.length - 1;
    while (end > 0 && isSpace(doc[end]!)) end--;
    if (doc[0] === OPEN && doc[end] === CLOSE) {
      let last = end - 1;
      while (last > 0 && isSpace(doc[last]!)) last--;
      if (last === 0) return `{${this.member}${key}}`;
      return `${doc.toString('utf8', 0, end)}, ${this.member}${key}}`;
    }
    return `{"message":${doc.toString('utf8')},${this.member}${key}}`;
  }
}
