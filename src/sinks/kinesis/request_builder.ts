import { createHash, randomBytes } from 'node:crypto';
import type { RowBatch } from '../../source/row_batch.js';
import { KeyedDocument } from '../aws/keyed_document.js';
import type { DeadLetterSubject, DeliveryRequest, RequestBuilder } from '../delivery/types.js';
import { KINESIS_LIMITS, parseStreamTemplate, type KinesisExporterConfig, type StreamTemplate } from './config.js';

/** User records bound for one or more streams; each item is one row. */
export class PutRecordsRequest implements DeliveryRequest {
  constructor(
    readonly streams: string[],
    readonly data: Buffer[],
    readonly partitionKeys: string[],
    readonly keys: string[],
    readonly tsMicros: number[],
    readonly bytes: number,
  ) {}

  get count(): number {
    return this.data.length;
  }

  subset(items: number[]): PutRecordsRequest {
    let bytes = 0;
    for (const i of items) bytes += this.data[i]!.length + Buffer.byteLength(this.partitionKeys[i]!);
    const pick = <T>(a: T[]) => items.map((i) => a[i]!);
    return new PutRecordsRequest(pick(this.streams), pick(this.data), pick(this.partitionKeys), pick(this.keys), pick(this.tsMicros), bytes);
  }

  split(): PutRecordsRequest[] | null {
    if (this.count < 2) return null;
    const all = this.data.map((_, i) => i);
    const half = Math.ceil(this.count / 2);
    return [this.subset(all.slice(0, half)), this.subset(all.slice(half))];
  }

  describe(i: number): DeadLetterSubject {
    return { key: this.keys[i]!, tsMicros: this.tsMicros[i]!, document: this.data[i]!.toString('utf8'), extra: { stream: this.streams[i], partitionKey: this.partitionKeys[i] } };
  }
}

/**
 * Rows → PutRecords requests: at most `chunk` records (≤ 500 without aggregation) and 10 MiB,
 * each record's data plus partition key within `maxRecordBytes`. The data is the row's JSON
 * document with the row key added; the stream name and partition key come from its fields.
 */
export class PutRecordsBuilder implements RequestBuilder<PutRecordsRequest> {
  private streams: string[] = [];
  private data: Buffer[] = [];
  private pks: string[] = [];
  private keys: string[] = [];
  private ts: number[] = [];
  private bytes = 0;
  private readonly keyed: KeyedDocument;
  private readonly template: StreamTemplate;
  private readonly needsFields: boolean;
  /** Aggregation adds framing per user record and per aggregated record: keep a margin under 10 MiB. */
  private readonly maxRequestBytes: number;
  private random: Buffer = Buffer.alloc(0);
  private randomAt = 0;
  /** The row `fits` last prepared, reused by `add`. */
  private prepared: { batch: RowBatch; i: number; data: Buffer; stream: string | null; pk: string; refused: string | null } | null = null;

  constructor(private readonly config: KinesisExporterConfig) {
    this.keyed = new KeyedDocument(config.keyAttribute);
    this.template = parseStreamTemplate('streamName', config.streamName);
    this.needsFields = this.template.fixed === undefined || config.partitionKeys !== undefined;
    this.maxRequestBytes = config.aggregation ? 9 * 1024 * 1024 : KINESIS_LIMITS.maxRequestBytes;
  }

  get count(): number {
    return this.data.length;
  }

  get full(): boolean {
    return this.data.length >= this.config.chunk;
  }

  fits(batch: RowBatch, i: number): boolean {
    const p = this.prepare(batch, i);
    return p.refused !== null || this.bytes + p.data.length + Buffer.byteLength(p.pk) <= this.maxRequestBytes;
  }

  add(batch: RowBatch, i: number): string | null {
    const p = this.prepare(batch, i);
    this.prepared = null;
    if (p.refused !== null) return p.refused;
    this.streams.push(p.stream!);
    this.data.push(p.data);
    this.pks.push(p.pk);
    this.keys.push(batch.key(i));
    this.ts.push(batch.tsMicros[i]!);
    this.bytes += p.data.length + Buffer.byteLength(p.pk);
    return null;
  }

  take(): PutRecordsRequest {
    const request = new PutRecordsRequest(this.streams, this.data, this.pks, this.keys, this.ts, this.bytes);
    this.streams = [];
    this.data = [];
    this.pks = [];
    this.keys = [];
    this.ts = [];
    this.bytes = 0;
    return request;
  }

  private prepare(batch: RowBatch, i: number) {
    if (this.prepared && this.prepared.batch === batch && this.prepared.i === i) return this.prepared;
    const data = Buffer.from(this.keyed.render(batch, i));
    let fields: Record<string, unknown> = {};
    if (this.needsFields) {
      try {
        const parsed = JSON.parse(batch.doc(i).toString('utf8')) as unknown;
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) fields = parsed as Record<string, unknown>;
      } catch {
        // not JSON: no fields to take
      }
    }
    let refused: string | null = null;
    const stream = this.renderStream(fields);
    if (typeof stream !== 'string') refused = stream.refused;
    const pk = this.partitionKey(batch, i, fields);
    const size = data.length + Buffer.byteLength(pk);
    if (refused === null && size > this.config.maxRecordBytes) refused = `the record is ${size} bytes (data and partition key); Kinesis accepts at most ${this.config.maxRecordBytes} per record (maxRecordBytes)`;
    this.prepared = { batch, i, data, stream: typeof stream === 'string' ? stream : null, pk, refused };
    return this.prepared;
  }

  private renderStream(fields: Record<string, unknown>): string | { refused: string } {
    if (this.template.fixed !== undefined) return this.template.fixed;
    let name = '';
    const parts = this.template.parts;
    for (let k = 0; k < parts.length; k++) {
      if (k % 2 === 0) {
        name += parts[k];
        continue;
      }
      const v = fields[parts[k]!];
      if (v === undefined || v === null || v === '') return { refused: `the record has no ${parts[k]} for streamName ${this.config.streamName}` };
      name += typeof v === 'string' ? v : JSON.stringify(v);
    }
    if (!/^[a-zA-Z0-9_.-]{1,128}$/.test(name)) return { refused: `streamName ${this.config.streamName} renders ${JSON.stringify(name)}, not a valid Kinesis stream name (1-128 of letters, digits, _ . -)` };
    return name;
  }

  /**
   * The row key by default; with `partitionKeys`, the fields' values joined by `|` (the row key
   * when every field is missing); a longer key than Kinesis takes becomes its MD5, which keeps
   * records of equal keys together.
   */
  private partitionKey(batch: RowBatch, i: number, fields: Record<string, unknown>): string {
    if (this.config.randomPartitionKey) return this.randomKey();
    const names = this.config.partitionKeys;
    if (!names) return batch.key(i);
    let pk = '';
    let any = false;
    for (let k = 0; k < names.length; k++) {
      const v = fields[names[k]!];
      if (k > 0) pk += '|';
      if (v !== undefined && v !== null) {
        any = true;
        pk += typeof v === 'string' ? v : JSON.stringify(v);
      }
    }
    if (!any) return batch.key(i);
    return pk.length > KINESIS_LIMITS.maxPartitionKeyChars ? createHash('md5').update(pk).digest('hex') : pk;
  }

  /** 128 random bits as hex, drawn from a pooled buffer (one crypto call per 256 records). */
  private randomKey(): string {
    if (this.randomAt + 16 > this.random.length) {
      this.random = randomBytes(16 * 256);
      this.randomAt = 0;
    }
    const s = this.random.toString('hex', this.randomAt, this.randomAt + 16);
    this.randomAt += 16;
    return s;
  }
}
