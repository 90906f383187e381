import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { escapeLiteral } from 'pg';
import type { Config } from '../config/types.js';
import { writesFiles } from '../sinks/registry.js';
import type { FileExporterConfig } from '../sinks/file/config.js';
import { OptionReader } from '../config/reader.js';
import { readOutputOptions } from '../sinks/output_options.js';
import { FILE_DEFAULT_TEMPLATE } from '../sinks/file/config.js';
import { TS_TEXT, type Bound } from '../plan/keyset.js';
import { computeWindow } from '../plan/window.js';
import { Progress } from '../run/progress.js';
import { emptyReport, runExport } from '../run/run.js';
import { filtersOf } from '../run/shard_task.js';
import { connectSource } from '../source/connection.js';
import { filterConditions, orderBy, rangeConditions, whereClause } from '../source/query.js';
import { describeTable } from '../source/table.js';
import { createStateStore } from '../state/create.js';
import { fixedDb } from '../source/session.js';
import { log } from '../util/log.js';
import { formatCount } from './format.js';

export interface TuneOptions { sampleRows: number; json: boolean }

/**
 * `logship tune`: exports a sample of the real window (the first sampleRows rows) to a temporary
 * directory with each workers x fetchSize combination and recommends the fastest. Measures the
 * source, encoding and local writes, not remote destinations; the stored offset is not touched.
 */
export async function tuneCommand(config: Config, o: TuneOptions): Promise<void> {
  const client = await connectSource(config.source, 'tune');
  let window: { start: Bound; end: Bound; fromLookback: boolean } | null;
  let sampleRows: number;
  try {
    const table = await describeTable(client, config.source);
    const state = await (await createStateStore(config, fixedDb(client))).load();
    window = await computeWindow(client, state.offset, config.lookbackPeriod, config.safetyLag);
    if (!window) throw new Error('the window is empty: nothing to sample (is the offset within the safety lag of now?)');
    const where = whereClause([...filterConditions(table, filtersOf(config)), ...rangeConditions(table, window.start, window.end)]);
    const cut = await client.query<{ ts: string; key: string }>(`SELECT ${TS_TEXT(table.ts)} AS ts, ${table.key}::text AS key FROM ${table.name} t ${where} ${orderBy(table)} OFFSET ${o.sampleRows} LIMIT 1`);
    if (cut.rows[0]) window = { ...window, end: { ts: cut.rows[0].ts, key: cut.rows[0].key } };
    const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table.name} t ${whereClause([...filterConditions(table, filtersOf(config)), ...rangeConditions(table, window.start, window.end)])}`);
    sampleRows = Number(count.rows[0]!.n);
    if (sampleRows === 0) throw new Error('the window holds no rows to sample');
  } finally {
    await client.end().catch(() => {});
  }

  const cores = os.availableParallelism();
  const workerOptions = [...new Set([1, 2, cores, cores * 2].filter((w) => w <= Math.max(2, cores * 2)))].sort((a, b) => a - b);
  const fetchOptions = [1000, 5000, 20000];
  // The user's first file-shaped exporter's encoding (or the defaults), written locally.
  const output = config.logExporters.find(writesFiles) ?? readOutputOptions(OptionReader.of('tune', {}), FILE_DEFAULT_TEMPLATE);
  const results: { workers: number; fetchSize: number; rowsPerSec: number; seconds: number; peakRssMiB: number }[] = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-tune-'));
  try {
    for (const workers of workerOptions) {
      for (const fetchSize of fetchOptions) {
        const dir = path.join(work, `w${workers}-f${fetchSize}`);
        const exporter: FileExporterConfig = {
          format: output.format, compression: output.compression, compressionLevel: output.compressionLevel,
          parquetCompression: output.parquetCompression, rowGroupSize: output.rowGroupSize,
          maxLinesPerFile: output.maxLinesPerFile, maxBytesPerFile: output.maxBytesPerFile,
          id: 'tune', type: 'file', directory: dir, logFilePrefix: 'tune', keyTemplate: FILE_DEFAULT_TEMPLATE,
        };
        const trial: Config = {
          ...config, workers, delete: false, offsetKey: 'logship-tune', lateRows: { horizon: 'PT0S' }, state: { type: 'file', path: path.join(dir, 'state.json') },
          source: { ...config.source, fetchSize }, rowsPerShard: Math.max(1000, Math.ceil(sampleRows / (workers * 4))), logExporters: [exporter],
        };
        const report = emptyReport(trial);
        const progress = new Progress({ tty: false, intervalMs: 3_600_000, stream: process.stderr, log });
        const t0 = Date.now();
        await runExport(trial, { log: log.child({}, { level: 'warn' }), progress, fixedWindow: window }, report);
        const seconds = (Date.now() - t0) / 1000;
        results.push({ workers, fetchSize, seconds, rowsPerSec: Math.round(report.rows / seconds), peakRssMiB: Math.round(report.peakRssBytes / 1048576) });
        fs.rmSync(dir, { recursive: true, force: true });
        if (!o.json) process.stderr.write(`  workers=${workers} fetchSize=${fetchSize}: ${formatCount(Math.round(report.rows / seconds))} rows/s\n`);
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const best = results.reduce((a, b) => (b.rowsPerSec > a.rowsPerSec ? b : a));
  // Within 5% of the best, fewer workers win: they leave cores to PostgreSQL and to other jobs.
  const recommended = results.filter((r) => r.rowsPerSec >= best.rowsPerSec * 0.95).sort((a, b) => a.workers - b.workers || b.rowsPerSec - a.rowsPerSec)[0]!;
  // Whether the configured (or auto-chosen) worker count is among the sweep's best.
  const configured = results.filter((r) => r.workers === config.workers).reduce<(typeof results)[number] | null>((a, b) => (!a || b.rowsPerSec > a.rowsPerSec ? b : a), null);
  const confirmed = configured !== null && configured.rowsPerSec >= best.rowsPerSec * 0.95;
  const current = { workers: config.workers, reason: config.workersReason ?? 'set in the config', confirmed };
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ sampleRows, results, recommended: { workers: recommended.workers, fetchSize: recommended.fetchSize }, current }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`sampled ${formatCount(sampleRows)} rows of the window; fastest ${formatCount(best.rowsPerSec)} rows/s\n`);
  process.stdout.write(`recommended: workers: ${recommended.workers}, source.fetchSize: ${recommended.fetchSize} (${formatCount(recommended.rowsPerSec)} rows/s; within 5% of the fastest, fewer workers are preferred)\n`);
  process.stdout.write(`current workers: ${current.workers} (${current.reason}): ${confirmed ? 'confirmed, within 5% of the fastest' : `slower; set workers: ${recommended.workers}`}\n`);
}
