// npm run build && node dist/bench/platform_kinesis.js [--rows 200000] [--chunk N]
import { occurrences, runPlatformBench } from './aws_platform_bench.js';

const PARTITION_KEY = Buffer.from('"PartitionKey":');
const RECORD = '{"SequenceNumber":"1","ShardId":"shardId-000000000000"}';
let records = 0;

await runPlatformBench('kinesis', {
  answer(target, body) {
    if (target.endsWith('PutRecords')) {
      const n = occurrences(body, PARTITION_KEY);
      records += n;
      return `{"FailedRecordCount":0,"Records":[${new Array(n).fill(RECORD).join(',')}]}`;
    }
    if (target.endsWith('DescribeStreamSummary')) return '{"StreamDescriptionSummary":{"StreamName":"bench","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/bench","StreamStatus":"ACTIVE","RetentionPeriodHours":24,"StreamCreationTimestamp":0,"EnhancedMonitoring":[],"OpenShardCount":1}}';
    return '{}';
  },
  accepted: () => records,
}, (endpoint) => ({ type: 'kinesis', region: 'us-east-1', endpoint, accessKeyId: 'AKIDBENCH', secretKeyId: 'bench', streamName: 'bench' }));
