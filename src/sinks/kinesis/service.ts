import { DescribeStreamSummaryCommand, KinesisClient, ListShardsCommand, ListStreamsCommand, PutRecordsCommand, type Shard } from '@aws-sdk/client-kinesis';
import { checkWithRetries } from '../aws/check.js';
import { awsClientOptions, type AwsError } from '../aws/client_options.js';
import type { DeliveryService } from '../delivery/types.js';
import { aggregateByShard, type ShardRange } from './aggregation.js';
import { KINESIS_LIMITS, type KinesisExporterConfig } from './config.js';
import type { PutRecordsRequest } from './request_builder.js';

/** What became of each item (row) of a request. */
export interface PutRecordsOutcome {
  /** Per item: null when stored, else the per-record ErrorCode and ErrorMessage. */
  failed: ({ code: string; message: string } | null)[];
  /** Calls that threw (a whole stream's records), with the items they carried. */
  thrown: { stream: string; items: number[]; error: unknown }[];
}

interface Entry { data: Buffer; partitionKey: string; explicitHashKey?: string; items: number[] }

/**
 * PutRecords through the official client (HTTP/1.1, its own retries off). A request may hold
 * records of several streams (a `streamName` template): one call per stream, in parallel. With
 * aggregation, user records are packed per destination shard (ListShards, cached per stream).
 */
export class KinesisService implements DeliveryService<PutRecordsRequest, PutRecordsOutcome> {
  readonly label: string;
  private readonly shardRanges = new Map<string, Promise<ShardRange[]>>();

  private constructor(
    private readonly config: KinesisExporterConfig,
    private readonly client: KinesisClient,
  ) {
    this.label = `kinesis exporter '${config.id}' (${config.streamName}, ${config.endpoint ?? config.region})`;
  }

  static async create(config: KinesisExporterConfig): Promise<KinesisService> {
    return new KinesisService(config, new KinesisClient(await awsClientOptions(config, config.requestTimeoutMs, `logship-${config.id}`)));
  }

  async check(): Promise<void> {
    const fixed = /\{/.test(this.config.streamName) ? undefined : this.config.streamName;
    if (fixed === undefined) {
      // Streams named per record cannot be checked ahead; the credentials and endpoint can.
      await checkWithRetries(this.config, this.label, 'cannot list streams', () => this.client.send(new ListStreamsCommand({ Limit: 1 })), () => null);
      return;
    }
    await checkWithRetries(this.config, this.label, `cannot use stream ${fixed}`, () => this.client.send(new DescribeStreamSummaryCommand({ StreamName: fixed })),
      (err) => ((err as AwsError)?.name === 'ResourceNotFoundException' ? `stream ${fixed} does not exist` : null));
    if (this.config.aggregation) await this.shards(fixed);
  }

  async send(request: PutRecordsRequest): Promise<PutRecordsOutcome> {
    const outcome: PutRecordsOutcome = { failed: new Array(request.count).fill(null), thrown: [] };
    const byStream = new Map<string, number[]>();
    for (let i = 0; i < request.count; i++) {
      const s = request.streams[i]!;
      let list = byStream.get(s);
      if (!list) byStream.set(s, (list = []));
      list.push(i);
    }
    await Promise.all([...byStream].map(async ([stream, items]) => {
      try {
        const entries: Entry[] = this.config.aggregation
          ? aggregateByShard(await this.shards(stream), request.partitionKeys, request.data, items)
          : items.map((i) => ({ data: request.data[i]!, partitionKey: request.partitionKeys[i]!, items: [i] }));
        for (const call of calls(entries)) await this.put(stream, call, outcome);
      } catch (error) {
        if (this.config.aggregation) this.shardRanges.delete(stream); // a reshard may have caused it
        outcome.thrown.push({ stream, items, error });
      }
    }));
    return outcome;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async put(stream: string, entries: Entry[], outcome: PutRecordsOutcome): Promise<void> {
    const out = await this.client.send(new PutRecordsCommand({
      StreamName: stream,
      Records: entries.map((e) => ({ Data: e.data, PartitionKey: e.partitionKey, ExplicitHashKey: e.explicitHashKey })),
    }));
    if (!out.FailedRecordCount) return;
    const records = out.Records ?? [];
    entries.forEach((e, j) => {
      const r = records[j];
      if (r?.ErrorCode) for (const i of e.items) outcome.failed[i] = { code: r.ErrorCode, message: r.ErrorMessage ?? '' };
    });
  }

  /** The stream's open shards (no ending sequence number), for routing aggregated records. */
  private shards(stream: string): Promise<ShardRange[]> {
    let p = this.shardRanges.get(stream);
    if (!p) {
      p = this.listShards(stream);
      this.shardRanges.set(stream, p);
      p.catch(() => this.shardRanges.delete(stream));
    }
    return p;
  }

  private async listShards(stream: string): Promise<ShardRange[]> {
    const all: Shard[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(new ListShardsCommand(token ? { NextToken: token } : { StreamName: stream }));
      all.push(...(out.Shards ?? []));
      token = out.NextToken;
    } while (token);
    return all.filter((s) => !s.SequenceNumberRange?.EndingSequenceNumber).map((s) => ({
      shardId: s.ShardId!, start: BigInt(s.HashKeyRange!.StartingHashKey!), end: BigInt(s.HashKeyRange!.EndingHashKey!),
    }));
  }
}

/** Entries cut into PutRecords calls of ≤ 500 records and ≤ 10 MiB (data plus partition keys). */
function calls(entries: Entry[]): Entry[][] {
  const out: Entry[][] = [];
  let current: Entry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = e.data.length + Buffer.byteLength(e.partitionKey);
    if (current.length > 0 && (current.length >= KINESIS_LIMITS.maxRecords || bytes + size > KINESIS_LIMITS.maxRequestBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}
