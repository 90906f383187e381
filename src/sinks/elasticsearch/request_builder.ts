import { ConfigError } from '../../core/errors.js';
import { quote } from '../../core/options.js';
import type { RowBatch } from '../../source/row_batch.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';

const DAY_US = 86_400_000_000;
const HOUR_US = 3_600_000_000;

/**
 * `kestra-logs-{yyyy.MM.dd}`: the braces hold a Java-style date pattern (yyyy, yy, MM, dd, HH)
 * rendered from each row's UTC event time, like Vector's `bulk.index` and daily-index pipelines.
 * Returns a renderer keyed by the finest unit used, so the name is built once per day or hour.
 */
export interface IndexPattern {
  /** 'hour' | 'day' | null (a fixed name: an index, alias or data stream). */
  unit: 'hour' | 'day' | null;
  render(tsMicros: number): string;
  /** Prefix before the date part and a parser of the date back out of a name (for prune). */
  prefix: string;
  dateOf(index: string): Date | null;
}

/** Elasticsearch/OpenSearch index-name rules; a name breaking them would dead-letter every document. */
function checkIndexName(path: string, name: string): void {
  const bad = /[\\/*?"<>| ,#:]/.exec(name);
  if (bad) throw new ConfigError(path, `index names may not contain ${JSON.stringify(bad[0])} (nor \\ / * ? " < > | space , # :)`);
  if (/^[-_+]/.test(name)) throw new ConfigError(path, 'index names may not start with -, _ or +');
  if (name === '.' || name === '..') throw new ConfigError(path, 'index names may not be . or ..');
  if (Buffer.byteLength(name) > 255) throw new ConfigError(path, 'index names may be at most 255 bytes');
}

export function parseIndexPattern(path: string, pattern: string): IndexPattern {
  const parsed = parseIndexPatternUnchecked(path, pattern);
  checkIndexName(path, parsed.render(Date.UTC(2026, 0, 1) * 1000));
  return parsed;
}

function parseIndexPatternUnchecked(path: string, pattern: string): IndexPattern {
  const m = /^([^{}]*)\{([^{}]+)\}([^{}]*)$/.exec(pattern);
  if (!m) {
    if (/[{}]/.test(pattern)) throw new ConfigError(path, `must contain at most one {date pattern} such as {yyyy.MM.dd} (got ${quote(pattern)})`);
    if (pattern !== pattern.toLowerCase()) throw new ConfigError(path, 'index names must be lower case');
    return { unit: null, render: () => pattern, prefix: pattern, dateOf: () => null };
  }
  const [, before, fmt, after] = m as unknown as [string, string, string, string];
  if (!/^(yyyy|yy|MM|dd|HH|[._\-/])+$/.test(fmt) || !fmt.includes('yy')) {
    throw new ConfigError(path, `unsupported date pattern {${fmt}} (use yyyy, yy, MM, dd, HH and . - _ separators)`);
  }
  if (`${before}${after}` !== `${before}${after}`.toLowerCase()) throw new ConfigError(path, 'index names must be lower case');
  const unit = fmt.includes('HH') ? 'hour' : 'day';
  const format = (d: Date) => fmt
    .replace('yyyy', String(d.getUTCFullYear()))
    .replace('yy', String(d.getUTCFullYear()).slice(2))
    .replace('MM', String(d.getUTCMonth() + 1).padStart(2, '0'))
    .replace('dd', String(d.getUTCDate()).padStart(2, '0'))
    .replace('HH', String(d.getUTCHours()).padStart(2, '0'));
  const re = new RegExp(`^${escape(before)}${fmt.replace(/[._\-/]/g, (c) => `\\${c}`).replace('yyyy', '(?<y>\\d{4})').replace('yy', '(?<y2>\\d{2})').replace('MM', '(?<M>\\d{2})').replace('dd', '(?<d>\\d{2})').replace('HH', '(?<H>\\d{2})')}${escape(after)}$`);
  let cachedKey = NaN;
  let cachedName = '';
  const size = unit === 'hour' ? HOUR_US : DAY_US;
  return {
    unit,
    prefix: before,
    render(ts) {
      const k = Math.floor(ts / size);
      if (k !== cachedKey) {
        cachedKey = k;
        cachedName = `${before}${format(new Date((k * size) / 1000))}${after}`;
      }
      return cachedName;
    },
    dateOf(index) {
      const g = re.exec(index)?.groups;
      if (!g) return null;
      const year = g.y ? Number(g.y) : 2000 + Number(g.y2);
      return new Date(Date.UTC(year, Number(g.M ?? '1') - 1, Number(g.d ?? '1'), Number(g.H ?? '0')));
    },
  };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One _bulk request: the NDJSON body and where each item (action + document) sits in it. */
export class BulkRequest implements DeliveryRequest {
  constructor(
    readonly body: Buffer,
    /** itemEnds[i] = offset just past item i's document line. */
    readonly itemEnds: Int32Array,
    /** Offset of item i's document line (after its action line). */
    readonly docStarts: Int32Array,
    /** Event time of each item, for dead-letter records. */
    readonly tsMicros: Float64Array,
  ) {}

  get count(): number {
    return this.itemEnds.length;
  }

  get bytes(): number {
    return this.body.length;
  }

  split(): BulkRequest[] | null {
    if (this.count < 2) return null;
    const half = Math.ceil(this.count / 2);
    const all = Array.from({ length: this.count }, (_, i) => i);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    const action = JSON.parse(this.action(i).toString('utf8')) as Record<string, { _index: string; _id: string }>;
    const meta = Object.values(action)[0]!;
    return { key: meta._id, tsMicros: this.tsMicros[i]!, document: this.doc(i), extra: { _index: meta._index, _id: meta._id } };
  }

  item(i: number): Buffer {
    return this.body.subarray(i === 0 ? 0 : this.itemEnds[i - 1]!, this.itemEnds[i]!);
  }

  doc(i: number): Buffer {
    return this.body.subarray(this.docStarts[i]!, this.itemEnds[i]! - 1);
  }

  action(i: number): Buffer {
    return this.body.subarray(i === 0 ? 0 : this.itemEnds[i - 1]!, this.docStarts[i]! - 1);
  }

  /** The request narrowed to some items, for retrying only those. */
  subset(items: number[]): BulkRequest {
    const parts = items.map((i) => this.item(i));
    const ends = new Int32Array(items.length);
    const starts = new Int32Array(items.length);
    const ts = new Float64Array(items.length);
    let at = 0;
    items.forEach((i, j) => {
      starts[j] = at + (this.docStarts[i]! - (i === 0 ? 0 : this.itemEnds[i - 1]!));
      at += parts[j]!.length;
      ends[j] = at;
      ts[j] = this.tsMicros[i]!;
    });
    return new BulkRequest(Buffer.concat(parts, at), ends, starts, ts);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Serialises rows straight from a RowBatch's bytes into a _bulk body: an action line with the
 * row key as `_id` (so a rerun conflicts instead of duplicating), then the document. No per-row
 * objects, strings or promises.
 */
export class BulkRequestBuilder implements RequestBuilder<BulkRequest> {
  private body: Buffer;
  private len = 0;
  private ends: number[] = [];
  private starts: number[] = [];
  private ts: number[] = [];
  private readonly open: Buffer;
  private readonly mid = Buffer.from('","_id":"');
  private readonly close = Buffer.from('"}}\n');
  private lastIndex = '';
  private indexBytes = Buffer.alloc(0);

  constructor(
    opType: 'create' | 'index',
    private readonly maxDocs: number,
    private readonly maxBytes: number,
    private readonly index: IndexPattern,
  ) {
    this.open = Buffer.from(`{"${opType}":{"_index":"`);
    this.body = Buffer.allocUnsafe(Math.min(maxBytes + 64 * 1024, 8 * 1024 * 1024));
  }

  get count(): number {
    return this.ends.length;
  }

  get full(): boolean {
    return this.ends.length >= this.maxDocs || this.len >= this.maxBytes;
  }

  add(batch: RowBatch, i: number): null {
    const index = this.index.render(batch.tsMicros[i]!);
    if (index !== this.lastIndex) {
      this.lastIndex = index;
      this.indexBytes = Buffer.from(JSON.stringify(index).slice(1, -1));
    }
    const keyStart = i === 0 ? 0 : batch.keyEnds[i - 1]!;
    const keyEnd = batch.keyEnds[i]!;
    const docStart = batch.start(i);
    const docEnd = batch.ends[i]!; // includes the newline
    const escaped = needsEscape(batch.keyBytes, keyStart, keyEnd) ? Buffer.from(JSON.stringify(batch.key(i)).slice(1, -1)) : null;
    const keyLen = escaped ? escaped.length : keyEnd - keyStart;
    const need = this.open.length + this.indexBytes.length + this.mid.length + keyLen + this.close.length + (docEnd - docStart);
    if (this.len + need > this.body.length) {
      const next = Buffer.allocUnsafe(Math.max(this.body.length * 2, this.len + need));
      this.body.copy(next, 0, 0, this.len);
      this.body = next;
    }
    this.len += this.open.copy(this.body, this.len);
    this.len += this.indexBytes.copy(this.body, this.len);
    this.len += this.mid.copy(this.body, this.len);
    this.len += escaped ? escaped.copy(this.body, this.len) : batch.keyBytes.copy(this.body, this.len, keyStart, keyEnd);
    this.len += this.close.copy(this.body, this.len);
    this.starts.push(this.len);
    this.len += batch.body.copy(this.body, this.len, docStart, docEnd);
    this.ends.push(this.len);
    this.ts.push(batch.tsMicros[i]!);
    return null;
  }

  take(): BulkRequest {
    const req = new BulkRequest(Buffer.from(this.body.subarray(0, this.len)), Int32Array.from(this.ends), Int32Array.from(this.starts), Float64Array.from(this.ts));
    this.len = 0;
    this.ends = [];
    this.starts = [];
    this.ts = [];
    return req;
  }
}

function needsEscape(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === QUOTE || c === BACKSLASH || c < 0x20) return true;
  }
  return false;
}
