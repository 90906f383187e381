// npm run build && node dist/bench/platform_newrelic.js [rows=200000] [compressions=gzip,none]
import { runIntakeBench } from './intake_bench.js';

await runIntakeBench({
  name: 'newrelic',
  status: 202,
  answer: '{"requestId":"00000000-0000-0000-0000-000000000000"}',
  exporter: (base) => ({ type: 'newrelic', basePath: base, apiKey: 'bench-key' }),
});
