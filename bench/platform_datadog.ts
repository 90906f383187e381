// npm run build && node dist/bench/platform_datadog.js [rows=200000] [compressions=gzip,none]
import { runIntakeBench } from './intake_bench.js';

await runIntakeBench({
  name: 'datadog',
  status: 202,
  answer: '{}',
  exporter: (base) => ({ type: 'datadog', basePath: base, apiKey: 'bench-key' }),
});
