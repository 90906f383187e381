import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../shard/config.js';
import type { ExportWindow } from '../plan/window.js';
import { OptionReader } from '../core/options.js';
import { writesFiles } from '../sinks/registry.js';
import { FILE_DEFAULT_TEMPLATE, type FileExporterConfig } from '../sinks/file/config.js';
import { readOutputOptions } from '../sinks/output_options.js';
import { Progress } from '../run/progress.js';
import { emptyReport } from '../run/report.js';
import { runExport } from '../run/run.js';
import { log } from '../core/log.js';

export interface Setting { workers: number; fetchSize: number }
export interface TrialResult { rows: number; seconds: number; rowsPerSec: number; planningMs: number; peakRssMiB: number }

/**
 * One trial: a whole `runExport` of `window`, as `logship run` would do it (the same planner,
 * shard reads, pool start-up and writes), into `dir` with the user's first file-shaped
 * exporter's encoding (or the defaults). It runs under its own offsetKey with a throwaway file
 * state, its dead letters stay in `dir`, and it never deletes: the real offset and source are
 * untouched. rowsPerSec is the run report's own figure (rows ÷ the whole run, planning
 * included), so it reads like a real run's.
 */
export async function runTrial(config: Config, window: ExportWindow, s: Setting, dir: string): Promise<TrialResult> {
  const output = config.logExporters.find(writesFiles) ?? readOutputOptions(OptionReader.of('tune', {}), FILE_DEFAULT_TEMPLATE);
  const exporter: FileExporterConfig = {
    format: output.format, compression: output.compression, compressionLevel: output.compressionLevel,
    parquetCompression: output.parquetCompression, rowGroupSize: output.rowGroupSize,
    maxLinesPerFile: output.maxLinesPerFile, maxBytesPerFile: output.maxBytesPerFile,
    id: 'tune', type: 'file', directory: path.join(dir, 'out'), logFilePrefix: 'tune', keyTemplate: FILE_DEFAULT_TEMPLATE,
  };
  const trial: Config = {
    ...config, workers: s.workers, workersReason: 'tune trial', delete: false, offsetKey: 'logship-tune', lateRows: { horizon: 'PT0S' },
    state: { type: 'file', path: path.join(dir, 'state.json') }, deadLetter: path.join(dir, 'dead-letter'),
    source: { ...config.source, fetchSize: s.fetchSize }, logExporters: [exporter],
  };
  const report = emptyReport(trial);
  const progress = new Progress({ tty: false, intervalMs: 3_600_000, stream: process.stderr, log });
  try {
    await runExport(trial, { log: log.child({}, { level: 'warn' }), progress, fixedWindow: window }, report);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (report.stopped) throw new Error(`a trial (workers ${s.workers}, fetchSize ${s.fetchSize}) stopped early (${report.stopped.reason})`);
  return {
    rows: report.rows, seconds: report.durationMs / 1000, rowsPerSec: report.rowsPerSec,
    planningMs: report.planningMs, peakRssMiB: Math.round(report.peakRssBytes / 1048576),
  };
}

/**
 * Runs every setting `rounds` times, interleaved and in alternating order (A B C, C B A, …), so
 * a slow moment of a shared machine or a warming cache falls on all settings alike rather than
 * on whichever ran then.
 */
export async function sweep(settings: Setting[], rounds: number, trial: (s: Setting) => Promise<TrialResult>): Promise<Map<Setting, TrialResult[]>> {
  const runs = new Map<Setting, TrialResult[]>(settings.map((s) => [s, []]));
  for (let round = 0; round < rounds; round++) {
    for (const s of round % 2 === 0 ? settings : [...settings].reverse()) runs.get(s)!.push(await trial(s));
  }
  return runs;
}

export function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}
