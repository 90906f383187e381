import type { Config } from '../shard/config.js';
import { definitionOf } from '../sinks/registry.js';
import type { ShardSpec } from '../core/keyset.js';
import { computeWindow, emptyWindowReason } from '../plan/window.js';
import { planWindow } from '../run/runner.js';
import { tableScanWarning } from '../plan/shards.js';
import { connectSource } from '../source/connection.js';
import { describeTable } from '../source/table.js';
import { createStateStore } from '../state/create.js';
import { fixedDb } from '../source/session.js';
import { formatBound, formatCount, plural } from '../core/format.js';

/** Where a shard's first rows go: each destination says (a file name, an index, a stream). */
function firstTarget(config: Config, exporterIndex: number, shard: ShardSpec): string {
  const e = config.logExporters[exporterIndex]!;
  return definitionOf(e).describeTarget(e, shard);
}

/** `logship plan`: what a run would do now, without writing anything. `distributed`: also judge the shards against queue.shardTimeout. */
export async function planCommand(config: Config, json: boolean, distributed = false): Promise<void> {
  if (distributed) (await import('../run/distributed/boss.js')).checkDistributedConfig(config);
  const client = await connectSource(config.source, 'plan');
  try {
    const table = await describeTable(client, config.source);
    const state = await (await createStateStore(config, fixedDb(client))).load();
    const pending = state.run ? state.run.shards.filter((s) => !state.done.has(s.index)) : [];
    const offset = state.run ? state.run.window.end : state.offset;
    const window = await computeWindow(client, offset, config.lookbackPeriod, config.safetyLag);
    const plan = window ? await planWindow(client, table, config, window, distributed) : null;
    const warnings = window ? await planWarnings(config, { start: window.start.ts, end: window.end.ts }) : [];
    const scanWarning = plan && tableScanWarning(table, plan, { ...config, autoShardSize: !config.rowsPerShardSet && !distributed });
    if (scanWarning) warnings.unshift(scanWarning);
    if (distributed) {
      const { shardTimeoutWarning } = await import('../run/distributed/shard_timeout.js');
      const tooLong = shardTimeoutWarning(config, [...pending, ...(plan?.shards ?? [])]);
      if (tooLong) warnings.push(tooLong);
    }
    const shardView = (s: ShardSpec) => ({
      index: s.index, lo: s.lo, hi: s.hi, estimatedRows: s.estimatedRows,
      firstFiles: Object.fromEntries(config.logExporters.map((e, i) => [e.id, firstTarget(config, i, s)])),
    });
    const out = {
      offsetKey: config.offsetKey,
      storedOffset: state.offset,
      unfinishedRun: state.run ? { runId: state.run.runId, shards: state.run.shards.length, done: state.done.size, pending: pending.map(shardView) } : null,
      window: window ? { start: window.start, end: window.end, fromLookback: window.fromLookback } : null,
      emptyWindowReason: window ? null : await emptyWindowReason(client, offset, config.lookbackPeriod, config.safetyLag),
      rows: plan?.totalRows ?? 0,
      rowsEstimated: plan?.method === 'sample' || plan?.method === 'statistics',
      method: plan?.method ?? 'empty',
      shardReads: plan?.reads ?? null,
      workers: config.workers,
      workersReason: config.workersReason ?? 'set in the config',
      shards: (plan?.shards ?? []).map(shardView),
      warnings,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    const lines: string[] = [];
    lines.push(`offsetKey ${config.offsetKey}; stored offset ${formatBound(state.offset)}`);
    if (out.unfinishedRun) lines.push(`unfinished run ${out.unfinishedRun.runId}: ${out.unfinishedRun.done}/${plural(out.unfinishedRun.shards, 'shard')} done; a run finishes its ${plural(pending.length, 'pending shard')} first`);
    if (!window) lines.push(`window: empty: ${await emptyWindowReason(client, offset, config.lookbackPeriod, config.safetyLag)}`);
    else {
      lines.push(`window: [${formatBound(window.start)}, ${formatBound(window.end)})${window.fromLookback ? ` (start from lookbackPeriod ${config.lookbackPeriod})` : ''}`);
      const rows = out.rowsEstimated ? `~${formatCount(out.rows)} (estimated from ${out.method === 'statistics' ? "the planner's statistics: one shard, no cut to place" : 'a page sample'})` : `${formatCount(out.rows)} (counted)`;
      // An empty window is known empty from one index probe: how shards would read is not asked.
      const reads = out.shards.length === 0 ? '' : `; shards read by ${out.shardReads === 'index' ? 'an index range' : 'a scan of the whole table'}`;
      lines.push(`rows: ${rows} in ${plural(out.shards.length, 'shard')}, ${plural(config.workers, 'worker')} (${out.workersReason})${reads}`);
      for (const s of out.shards) {
        lines.push(`  shard ${s.index}: ${out.rowsEstimated ? '~' : ''}${plural(s.estimatedRows, 'row')}  [${formatBound(s.lo)}, ${formatBound(s.hi)})`);
        for (const [id, name] of Object.entries(s.firstFiles)) lines.push(`      ${id}: ${name}${s.estimatedRows > 0 ? '' : ' (only if rows arrive)'}`);
      }
    }
    for (const w of warnings) lines.push(`warning: ${w}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Each destination's warnings about the window (backfills older than the platform accepts). */
async function planWarnings(config: Config, window: { start: string; end: string }): Promise<string[]> {
  const out: string[] = [];
  for (const e of config.logExporters) {
    const d = definitionOf(e);
    if (d.planWarnings) out.push(...(await d.planWarnings(e, window)));
  }
  return out;
}

/** `logship state`: the stored offset and any unfinished run; `--reset` forgets both. */
export async function stateCommand(config: Config, reset: boolean, json: boolean): Promise<void> {
  const client = await connectSource(config.source, 'state');
  try {
    const store = await createStateStore(config, fixedDb(client));
    if (reset) {
      await store.open();
      try {
        await store.reset();
      } finally {
        await store.close();
      }
      // The state as it now is, in the shape of `state --json`, marked as just reset.
      if (json) process.stdout.write(`${JSON.stringify({ offsetKey: config.offsetKey, store: store.label, reset: true, offset: null, unfinishedRun: null, lookbackPeriod: config.lookbackPeriod }, null, 2)}\n`);
      else process.stdout.write(`offsetKey ${config.offsetKey}: state reset; the next run starts from lookbackPeriod ${config.lookbackPeriod}\n`);
      return;
    }
    const state = await store.load();
    const out = {
      offsetKey: config.offsetKey,
      store: store.label,
      offset: state.offset,
      updatedAt: state.updatedAt,
      unfinishedRun: state.run ? { runId: state.run.runId, kind: state.run.kind ?? 'window', createdAt: state.run.createdAt, window: state.run.window, shards: state.run.shards.length, done: [...state.done.keys()].sort((a, b) => a - b) } : null,
      lateRows: { horizon: config.lateRows.horizon, rangesTracked: state.reads.length },
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    const lines = [`offsetKey ${config.offsetKey} (${store.label})`, `offset: ${formatBound(state.offset)}${state.updatedAt ? ` (updated ${state.updatedAt})` : ''}`];
    if (out.unfinishedRun) lines.push(`unfinished run ${out.unfinishedRun.runId} from ${out.unfinishedRun.createdAt}: ${out.unfinishedRun.done.length}/${plural(out.unfinishedRun.shards, 'shard')} done; the next run finishes it first`);
    else lines.push('no unfinished run');
    lines.push(`late rows: ${state.reads.length} exported ranges inside the ${config.lateRows.horizon} horizon are checked at each run`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await client.end().catch(() => {});
  }
}
