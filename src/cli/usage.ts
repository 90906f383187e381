/**
 * What `logship --help` and `logship COMMAND --help` print. Each command's text is its usage
 * lines, what it does and what its flags mean; the whole usage lists every command's lines.
 */

const CONFIG_FLAGS = `  --config FILE          a logship YAML file, or a whole Kestra flow with a LogShipper or AuditLogShipper task
                         (a flow has no database settings: the source comes from LOGSHIP_SOURCE_URL or PG*)
  --task ID              the flow's LogShipper task to use, when it has several
  --var NAME=VALUE       fills {{ vars.NAME }} (after the flow's variables; LOGSHIP_VAR_NAME last); repeatable
  --url-map FROM=TO      sends every URL of the config starting with FROM to TO instead; repeatable`;

const EXIT_CODES = `Exit codes: 0 success (also a stop at --max-duration), 1 run failed (rerun resumes),
2 usage or config error, 3 finished but rows or documents were dead-lettered (allowDeadLetter: true
makes that 0), 4 the source database was unavailable at startup (retry later),
130/143 stopped by SIGINT/SIGTERM (checkpoint saved; rerun resumes).`;

const METRICS_FLAGS = `  --metrics-port N       serve Prometheus /metrics on port N while the process lives (0: any free port)
  --pushgateway URL      push the metrics to a Prometheus Pushgateway every --progress-interval and at the end`;

/** Flags each command reads; any other is refused rather than silently ignored. */
export const COMMAND_FLAGS: Record<string, readonly string[]> = {
  run: ['config', 'task', 'var', 'url-map', 'report', 'progress-interval', 'max-duration', 'metrics-port', 'pushgateway', 'distributed', 'no-wait', 'work', 'follow', 'interval', 'max-backoff'],
  worker: ['config', 'task', 'var', 'url-map', 'concurrency', 'idle-exit', 'metrics-port', 'pushgateway', 'progress-interval'],
  status: ['config', 'task', 'var', 'url-map', 'json'],
  plan: ['config', 'task', 'var', 'url-map', 'json', 'distributed'],
  state: ['config', 'task', 'var', 'url-map', 'reset', 'json'],
  tune: ['config', 'task', 'var', 'url-map', 'sample-rows', 'json'],
  prune: ['config', 'task', 'var', 'url-map', 'exporter', 'keep-days', 'dry-run'],
  demo: ['rows', 'out', 'format', 'compression', 'audit'],
};

interface CommandUsage { lines: string[]; text: string }

export const COMMAND_USAGE: Record<string, CommandUsage> = {
  run: {
    lines: [
      `logship run   --config FILE [--task ID] [--var NAME=VALUE]... [--url-map FROM=TO]... [--report FILE] [--progress-interval SECONDS]
                [--max-duration PT14M] [--metrics-port N] [--pushgateway URL] [--distributed [--no-wait | --work]]`,
      `logship run   --config FILE --follow [--interval PT10S] [--max-backoff PT60S] [--task ID] [--var NAME=VALUE]... [--url-map FROM=TO]...
                [--progress-interval SECONDS] [--max-duration PT5M] [--metrics-port N] [--pushgateway URL]`,
    ],
    text: `Exports the window since the stored offset, then moves the offset; a rerun resumes an unfinished run.

${CONFIG_FLAGS}
  --report FILE          write the run's report as JSON (also when it fails); its directory must exist
  --progress-interval S  seconds between progress lines off a terminal (default 10)
  --max-duration PT14M   stop at this deadline with the checkpoint saved (exit 0, status partial)
${METRICS_FLAGS}
  --distributed          enqueue the shards for \`logship worker\` processes; --no-wait returns at once,
                         --work also works the shards here
  --follow               keep running: ship a cycle every --interval (default PT10S; a longer cycle is
                         followed at once, never overlapped), on one pool, session and state lock;
                         failed cycles are retried with a backoff doubling from 1 s to --max-backoff
                         (default PT60S); --max-duration then bounds each cycle

${EXIT_CODES} run --follow ends only with
130/143, or 2/4 at startup, or 2/1 for an error no retry can fix.`,
  },
  worker: {
    lines: ['logship worker --config FILE [--task ID] [--concurrency N] [--idle-exit SECONDS] [--metrics-port N] [--pushgateway URL] [--progress-interval SECONDS]'],
    text: `Works the shard jobs of \`logship run --distributed\` until stopped (SIGTERM) or idle.

${CONFIG_FLAGS}
  --concurrency N        shards at once (default: the config's workers)
  --idle-exit SECONDS    exit 0 after this long without a job
${METRICS_FLAGS}
  --progress-interval S  seconds between progress lines and pushes (default 10)`,
  },
  status: {
    lines: ['logship status --config FILE [--task ID] [--json]'],
    text: `Shows a distributed run's progress: its shards by state, rows and ETA, and where each running shard runs.

${CONFIG_FLAGS}
  --json                 print it as JSON`,
  },
  plan: {
    lines: ['logship plan  --config FILE [--task ID] [--json] [--distributed]'],
    text: `Dry run: the window, its shards and row counts (labelled when estimated) and the first file, index or
stream of each; writes nothing.

${CONFIG_FLAGS}
  --json                 print it as JSON
  --distributed          also judge the shards against queue.shardTimeout`,
  },
  state: {
    lines: ['logship state --config FILE [--task ID] [--reset] [--json]'],
    text: `Shows the stored offset and any unfinished run.

${CONFIG_FLAGS}
  --reset                forget both: the next run starts from lookbackPeriod
  --json                 print it as JSON`,
  },
  tune: {
    lines: ['logship tune  --config FILE [--sample-rows N] [--json]'],
    text: `Measures exports of a sample of your data (about a minute) and recommends workers and fetchSize.

${CONFIG_FLAGS}
  --sample-rows N        rows per trial (default: sized from a first measured rate)
  --json                 print it as JSON`,
  },
  prune: {
    lines: ['logship prune --config FILE --exporter ID --keep-days N [--dry-run]'],
    text: `Deletes an Elasticsearch or OpenSearch exporter's daily indices older than --keep-days.

${CONFIG_FLAGS}
  --exporter ID          the exporter whose indices to prune
  --keep-days N          keep this many days of indices
  --dry-run              list what would be deleted, delete nothing`,
  },
  demo: {
    lines: ['logship demo  [--rows N] [--out DIR] [--format NDJSON|JSON] [--compression gzip|zstd|none] [--audit]'],
    text: `Starts an embedded PostgreSQL, seeds synthetic Kestra logs and exports them to files.

  --rows N               rows to seed (default 1000000)
  --out DIR              where the files go (default ./logship-out)
  --format F             NDJSON (default) or JSON
  --compression C        gzip (default), zstd or none
  --audit                seed and export audit logs instead`,
  },
};

/** `logship --help`: every command's usage lines, then what applies to all of them. */
export function generalUsage(): string {
  const lines = Object.values(COMMAND_USAGE).flatMap((c) => c.lines);
  return `usage:
${lines.map((l) => `  ${l}`).join('\n')}
  logship --version

\`logship COMMAND --help\` shows one command's usage and flags.
--config takes a logship YAML file or a whole Kestra flow with a LogShipper or AuditLogShipper
task; --var fills {{ vars.NAME }} (after the flow's variables; LOGSHIP_VAR_NAME last);
--url-map FROM=TO (every command that takes --config, repeatable) sends URLs starting with FROM to TO.
run --follow keeps running and ships a cycle every --interval (default PT10S; a longer cycle is
followed at once, never overlapped), on one pool, session and state lock, with a single run's
guarantees; failed cycles are retried with a backoff doubling from 1 s to --max-backoff (default
PT60S); --max-duration then bounds each cycle.
${EXIT_CODES} run --follow ends only with
130/143, or 2/4 at startup, or 2/1 for an error no retry can fix.`;
}

/** `logship COMMAND --help`. */
export function commandUsage(command: string): string {
  const c = COMMAND_USAGE[command]!;
  return `usage:\n${c.lines.map((l) => `  ${l}`).join('\n')}\n\n${c.text}`;
}
