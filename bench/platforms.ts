// `npm run bench:platforms [-- --rows N]`: every observability platform's throughput bench, one
// after another, each in its own process against its own local endpoint that answers at once
// (workers: 1). Each bench prints events/s and peak RSS; this only runs them in turn.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, only: { type: 'string' } } });
const rows = values.rows!;
const here = path.dirname(fileURLToPath(import.meta.url));
// Datadog and New Relic take positional arguments (rows, variants); the others --rows.
const benches: [string, string[]][] = [
  ['platform_datadog.js', [rows, 'gzip']],
  ['platform_newrelic.js', [rows, 'gzip']],
  ['platform_splunk.js', ['--rows', rows]],
  ['platform_otlp.js', ['--rows', rows]],
  ['platform_loki.js', ['--rows', rows, '--variants', 'protobuf']],
  ['platform_cloudwatch.js', ['--rows', rows]],
  ['platform_kinesis.js', ['--rows', rows]],
  ['platform_azure_monitor.js', ['--rows', rows]],
  ['platform_google_logging.js', ['--rows', rows]],
];
let failed = 0;
for (const [file, args] of benches) {
  if (values.only && !file.includes(values.only)) continue;
  process.stdout.write(`\n== ${file.replace(/^platform_|\.js$/g, '')}\n`);
  const r = spawnSync(process.execPath, [path.join(here, file), ...args], { stdio: 'inherit', env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
