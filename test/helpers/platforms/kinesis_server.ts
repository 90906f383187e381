import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { CreateStreamCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { hashKeyOf } from '../../../src/sinks/kinesis/aggregation.js';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';
import { verifySigV4, type AwsTestCredentials } from './aws_auth.js';

// The test process's own Kinesis client (creating and reading streams) need not warn about Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const require = createRequire(import.meta.url);
const kinesalite = require('kinesalite') as (o: { createStreamMs: number; deleteStreamMs?: number; updateStreamMs?: number; shardLimit?: number }) => http.Server;
const { deaggregateSync } = require('aws-kinesis-agg') as {
  deaggregateSync(r: { data: string; partitionKey: string; explicitPartitionKey?: string; sequenceNumber: string }, checksums: boolean, cb: (err: Error | null, records?: { partitionKey: string; data: string }[]) => void): void;
};

export function kinesisError(type: string, message: string, status = 400): Answer {
  return { status, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ __type: type, message }) };
}

/** A user record as a consumer sees it after de-aggregation, with the shard it was read from. */
export interface ConsumedRecord { partitionKey: string; data: Buffer; shardId: string; aggregated: boolean; inOwnShard: boolean }

interface PutRecordsInput { StreamName: string; Records: { Data: string; PartitionKey: string; ExplicitHashKey?: string }[] }

/**
 * kinesalite (a real Kinesis emulator) behind a fault-injecting proxy that the exporter talks
 * to. The proxy verifies SigV4, enforces Kinesis' real PutRecords limits (which kinesalite only
 * partly checks: ≤ 500 records, data + partition key ≤ 1 MiB per record, ≤ 10 MiB per call),
 * injects whole-call faults (`failNext`) and per-record failures in Kinesis' own shape
 * (`failRecord`: those records are not forwarded, and the answer is a 200 with ErrorCode and
 * FailedRecordCount merged into kinesalite's results).
 */
export class KinesisServer extends PlatformEndpoint {
  /** Per record (1-based attempt of that partition key + data): an ErrorCode to fail it with. */
  failRecord: (r: { partitionKey: string; data: Buffer }, attempt: number) => string | undefined = () => undefined;
  putRecordsCalls = 0;
  /** Holds each PutRecords this long before answering, so requests overlap (for backpressure tests). */
  putDelayMs = 0;
  /** Most records the proxy held in unanswered PutRecords calls at once. */
  peakRecordsInFlight = 0;
  /** Records kinesalite accepted through the proxy (cheap progress for kill tests). */
  recordsStored = 0;
  private recordsInFlight = 0;
  private emulator: http.Server | null = null;
  private emulatorUrl = '';
  private readonly attempts = new Map<string, number>();
  private readonly direct: () => KinesisClient;

  constructor(private readonly credentials: AwsTestCredentials[] = [{ accessKeyId: 'AKIDLOGSHIPTEST', secretAccessKey: 'test-secret-key' }]) {
    super();
    let client: KinesisClient | null = null;
    this.direct = () => (client ??= new KinesisClient({ endpoint: this.emulatorUrl, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' }, requestHandler: new NodeHttpHandler() }));
  }

  override async start(): Promise<this> {
    this.emulator = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
    await new Promise<void>((resolve) => this.emulator!.listen(0, '127.0.0.1', resolve));
    this.emulatorUrl = `http://127.0.0.1:${(this.emulator.address() as AddressInfo).port}`;
    return super.start();
  }

  override async stop(): Promise<void> {
    this.direct().destroy();
    await super.stop();
    this.emulator?.closeAllConnections();
    await new Promise<void>((resolve) => (this.emulator ? this.emulator.close(() => resolve()) : resolve()));
  }

  async createStream(name: string, shards = 1): Promise<void> {
    await this.direct().send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  }

  /** Every user record in the stream, de-aggregated as a KCL consumer would, shard by shard. */
  async consume(stream: string): Promise<ConsumedRecord[]> {
    const client = this.direct();
    const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
    const out: ConsumedRecord[] = [];
    for (const shard of shards) {
      const lo = BigInt(shard.HashKeyRange!.StartingHashKey!);
      const hi = BigInt(shard.HashKeyRange!.EndingHashKey!);
      let iterator = (await client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
      while (iterator) {
        const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
        for (const r of page.Records ?? []) {
          const data = Buffer.from(r.Data!);
          const aggregated = data.subarray(0, 4).toString('hex') === 'f3899ac2';
          let users: { partitionKey: string; data: string }[] = [];
          deaggregateSync({ data: data.toString('base64'), partitionKey: r.PartitionKey!, sequenceNumber: r.SequenceNumber! }, true, (err, records) => {
            if (err) throw err;
            users = records ?? [];
          });
          for (const u of users) {
            const h = hashKeyOf(u.partitionKey);
            out.push({ partitionKey: u.partitionKey, data: Buffer.from(u.data, 'base64'), shardId: shard.ShardId!, aggregated, inOwnShard: !aggregated || (h >= lo && h <= hi) });
          }
        }
        if ((page.Records ?? []).length === 0) break;
        iterator = page.NextShardIterator;
      }
    }
    return out;
  }

  protected async handle(r: ReceivedRequest): Promise<Answer> {
    const denied = await verifySigV4(r, this.credentials, 'kinesis');
    if (denied) return kinesisError(denied.type, denied.message, denied.type === 'InvalidSignatureException' ? 403 : 400);
    const target = String(r.headers['x-amz-target'] ?? '');
    if (target !== 'Kinesis_20131202.PutRecords') return this.forward(r.headers, r.body);
    this.putRecordsCalls++;
    const input = JSON.parse(r.body.toString('utf8')) as PutRecordsInput;
    const n = input.Records?.length ?? 0;
    this.recordsInFlight += n;
    this.peakRecordsInFlight = Math.max(this.peakRecordsInFlight, this.recordsInFlight);
    try {
      if (this.putDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.putDelayMs));
      return await this.putRecords(r, input);
    } finally {
      this.recordsInFlight -= n;
    }
  }

  private async putRecords(r: ReceivedRequest, input: PutRecordsInput): Promise<Answer> {
    const records = input.Records ?? [];
    if (records.length < 1 || records.length > 500) return kinesisError('ValidationException', `1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to 500`);
    let total = 0;
    const decoded = records.map((rec) => Buffer.from(rec.Data, 'base64'));
    for (let i = 0; i < records.length; i++) {
      const size = decoded[i]!.length + Buffer.byteLength(records[i]!.PartitionKey);
      if (size > 1024 * 1024) return kinesisError('InvalidArgumentException', `Record size including partition key exceeds 1048576 bytes at index ${i}`);
      total += size;
    }
    if (total > 10 * 1024 * 1024) return kinesisError('InvalidArgumentException', `Records size exceeds 10 MiB limit (${total} bytes)`);
    const failures = records.map((rec, i) => {
      const id = `${rec.PartitionKey}\u0000${rec.Data}`;
      const attempt = (this.attempts.get(id) ?? 0) + 1;
      this.attempts.set(id, attempt);
      return this.failRecord({ partitionKey: rec.PartitionKey, data: decoded[i]! }, attempt);
    });
    const forwarded = records.filter((_, i) => !failures[i]);
    let stored: { SequenceNumber?: string; ShardId?: string; ErrorCode?: string; ErrorMessage?: string }[] = [];
    if (forwarded.length > 0) {
      const answer = await this.forward(r.headers, Buffer.from(JSON.stringify({ ...input, Records: forwarded })));
      if (answer.status !== 200) return answer;
      stored = (JSON.parse(String(answer.body)) as { Records: typeof stored }).Records;
      this.recordsStored += forwarded.length;
    }
    let next = 0;
    const merged = records.map((_, i) => failures[i]
      ? { ErrorCode: failures[i], ErrorMessage: failures[i] === 'ProvisionedThroughputExceededException' ? `Rate exceeded for shard shardId-000000000000 in stream ${input.StreamName} under account 000000000000.` : 'Internal service failure.' }
      : stored[next++]!);
    const failed = merged.filter((m) => 'ErrorCode' in m && m.ErrorCode).length;
    return { status: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ FailedRecordCount: failed, Records: merged }) };
  }

  private async forward(headers: http.IncomingHttpHeaders, body: Buffer): Promise<Answer> {
    const res = await fetch(this.emulatorUrl, {
      method: 'POST',
      headers: { 'content-type': String(headers['content-type'] ?? 'application/x-amz-json-1.1'), 'x-amz-target': String(headers['x-amz-target'] ?? ''), authorization: String(headers.authorization ?? ''), 'x-amz-date': String(headers['x-amz-date'] ?? '') },
      body: new Uint8Array(body),
    });
    return { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/x-amz-json-1.1' }, body: Buffer.from(await res.arrayBuffer()) };
  }
}
