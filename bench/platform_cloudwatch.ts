// npm run build && node dist/bench/platform_cloudwatch.js [--rows 200000] [--chunk N]
import { occurrences, runPlatformBench } from './aws_platform_bench.js';

const TIMESTAMP = Buffer.from('"timestamp":');
let events = 0;

await runPlatformBench('cloudwatch', {
  answer(target, body) {
    if (target.endsWith('PutLogEvents')) {
      events += occurrences(body, TIMESTAMP);
      return '{"nextSequenceToken":"1"}';
    }
    if (target.endsWith('DescribeLogGroups')) return '{"logGroups":[{"logGroupName":"kestra"}]}';
    if (target.endsWith('DescribeLogStreams')) return '{"logStreams":[{"logStreamName":"bench"}]}';
    return '{}';
  },
  accepted: () => events,
}, (endpoint) => ({ type: 'cloudwatch', region: 'us-east-1', endpoint, accessKeyId: 'AKIDBENCH', secretKeyId: 'bench', logGroupName: 'kestra', logStreamName: 'bench', chunk: 10_000 }));
