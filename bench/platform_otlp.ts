// OTLP/HTTP throughput against a collector endpoint that answers at once: npm run build && node dist/bench/platform_otlp.js [--rows N]
import { benchPlatform } from './platform_kit.js';

await benchPlatform({
  name: 'otlp',
  // An empty ExportLogsServiceResponse: full success, in the request's own encoding.
  answer: (req) => (String(req.headers['content-type']).includes('json')
    ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' }
    : { status: 200, headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.alloc(0) }),
  exporter: (baseUrl, variant) => {
    const [protocol, compression] = variant.split(' ');
    return { type: 'otlp', otlpEndpoint: `${baseUrl}/v1/logs`, protocol, compression };
  },
  variants: ['http/protobuf gzip', 'http/protobuf none', 'http/json gzip'],
});
