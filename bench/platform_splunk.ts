// Splunk HEC throughput against an endpoint that acknowledges at once: npm run build && node dist/bench/platform_splunk.js [--rows N]
import { benchPlatform } from './platform_kit.js';

const success = JSON.stringify({ text: 'Success', code: 0 });
await benchPlatform({
  name: 'splunk',
  answer: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: success }),
  exporter: (baseUrl, variant) => ({ type: 'splunk', host: baseUrl, token: 'bench-token', compression: variant === 'gzip' ? 'gzip' : 'none' }),
  variants: ['gzip', 'none'],
});
