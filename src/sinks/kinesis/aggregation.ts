import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

interface UserRecord { partitionKey: string; explicitHashKey?: string; data: Buffer }
interface Aggregator {
  checkIfUserRecordFits(record: UserRecord): boolean;
  addUserRecord(record: UserRecord): void;
  length(): number;
  build(): { partitionKey: string; data: Buffer };
}

// aws-kinesis-agg ships types that import the v2 SDK; its runtime is plain CommonJS.
const { RecordAggregator } = createRequire(import.meta.url)('aws-kinesis-agg') as { RecordAggregator: new () => Aggregator };

/** An open shard's hash-key range. */
export interface ShardRange { shardId: string; start: bigint; end: bigint }

/** The 128-bit hash Kinesis routes a partition key by: MD5 as an unsigned big-endian integer. */
export function hashKeyOf(partitionKey: string): bigint {
  return BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);
}

/** One aggregated Kinesis record and the user records (request items) it carries. */
export interface AggregatedRecord { partitionKey: string; explicitHashKey: string; data: Buffer; items: number[] }

/**
 * KPL-format aggregation per destination shard: user records are grouped by the shard their
 * partition key hashes to, and each group is packed into records of at most 1 MiB whose
 * ExplicitHashKey lies in that shard. Consumers (KCL, aws-kinesis-agg) drop user records whose
 * key belongs to another shard than the one they read, so mixing shards would lose data.
 */
export function aggregateByShard(shards: ShardRange[], partitionKeys: string[], data: Buffer[], items: number[]): AggregatedRecord[] {
  const byShard = new Map<ShardRange, number[]>();
  for (const item of items) {
    const h = hashKeyOf(partitionKeys[item]!);
    const shard = shards.find((s) => h >= s.start && h <= s.end);
    if (!shard) throw new Error(`no open shard covers the hash key of partition key ${JSON.stringify(partitionKeys[item])} (the stream is resharding); retrying`);
    let list = byShard.get(shard);
    if (!list) byShard.set(shard, (list = []));
    list.push(item);
  }
  const out: AggregatedRecord[] = [];
  for (const [shard, list] of byShard) {
    const agg = new RecordAggregator();
    let members: number[] = [];
    const flush = () => {
      if (agg.length() === 0) return;
      const built = agg.build();
      // Any hash in the shard routes the record there; the shard's first hash key is the simplest.
      out.push({ partitionKey: built.partitionKey, explicitHashKey: shard.start.toString(), data: built.data, items: members });
      members = [];
    };
    for (const item of list) {
      const record = { partitionKey: partitionKeys[item]!, data: data[item]! };
      if (!agg.checkIfUserRecordFits(record)) flush();
      agg.addUserRecord(record);
      members.push(item);
    }
    flush();
  }
  return out;
}
