// `logship tune` through the CLI against a real PostgreSQL: what it samples, its output's shape,
// that the stored offset never moves, and its option checks. Speed is never asserted: trials'
// rows/s depend on the machine; their structure and the offset do not.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { listParts, runCli, tempDir, writeConfig } from './helpers/cli.js';

interface Setup { client: pg.Client; cfg: string; out: string }
const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

/** `rows` rows over the last hour (all older than the safety lag), postgres state (the default). */
async function setup(label: string, rows: number, extra: Record<string, unknown> = {}, source: Record<string, unknown> = {}): Promise<Setup> {
  const { url, client } = await freshDatabase(label);
  opened.push(client);
  await seedKestraLogs(client, { rows, start: isoAgo(3600 + 120), spanSeconds: 3600 });
  const dir = tempDir(label);
  const out = path.join(dir, 'out');
  const cfg = writeConfig(dir, {
    source: { url, ...source }, lookbackPeriod: 'P1D', workers: 2, ...extra,
    logExporters: [{ id: 'files', type: 'file', directory: out }],
  });
  return { client, cfg, out };
}

interface TuneJson {
  sampleRows: number;
  sample: { source: 'window' | 'history'; start: { ts: string; key: string | null } | null; end: { ts: string; key: string | null }; firstRowsPerSec: number | null };
  results: { workers: number; fetchSize: number; rows: number; rowsPerSec: number; runs: number[]; seconds: number; peakRssMiB: number }[];
  recommended: { workers: number; fetchSize: number; rowsPerSec: number };
  current: { workers: number; reason: string; confirmed: boolean };
}

async function tune(cfg: string, ...flags: string[]): Promise<TuneJson> {
  const r = await runCli(['tune', '--config', cfg, '--json', ...flags]);
  expect(r.stderr).not.toMatch(/"level":(40|50)/);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as TuneJson;
}

const stateTable = async (client: pg.Client) => (await client.query('SELECT * FROM logship_state ORDER BY 1')).rows;
const stateJson = async (cfg: string) => (await runCli(['state', '--config', cfg, '--json'])).stdout;

describe('logship tune', () => {
  it('samples the first rows of the window, sweeps worker counts in interleaved rounds, and moves no offset', async () => {
    const s = await setup('tune_window', 3000);
    const out = await tune(s.cfg, '--sample-rows', '1000');
    // 3 000 rows are ranked exactly, so the cut falls on the 1 000th.
    expect(out.sampleRows).toBe(1000);
    expect(out.sample).toMatchObject({ source: 'window', firstRowsPerSec: null });
    expect(out.sample.start).not.toBeNull();
    expect(out.sample.end.key).not.toBeNull();
    for (const r of out.results) {
      expect(r).toEqual({ workers: expect.any(Number), fetchSize: expect.any(Number), rows: 1000, rowsPerSec: expect.any(Number), runs: expect.any(Array), seconds: expect.any(Number), peakRssMiB: expect.any(Number) });
      // Three interleaved rounds a setting.
      expect(r.runs.length).toBe(3);
      expect(r.rowsPerSec).toBeGreaterThan(0);
    }
    // Worker counts at the configured (default, sweet-spot) fetchSize only.
    expect(out.results.map((r) => r.workers)).toEqual(expect.arrayContaining([1, 2]));
    expect(out.results.every((r) => r.fetchSize === 5000)).toBe(true);
    expect(out.recommended.fetchSize).toBe(5000);
    expect(out.current).toMatchObject({ workers: 2, reason: 'set in the config', confirmed: expect.any(Boolean) });
    expect(out.recommended.rowsPerSec).toBe(out.results.find((r) => r.workers === out.recommended.workers && r.fetchSize === out.recommended.fetchSize)!.rowsPerSec);
    // Nothing stored, nothing written to the real exporter.
    expect(JSON.parse(await stateJson(s.cfg)).offset).toBeNull();
    expect(listParts(s.out)).toEqual([]);
  });

  it('once the offset is current, samples the history before it and leaves the stored state exactly as it was', async () => {
    const s = await setup('tune_current', 3000, { safetyLag: 'PT1S' });
    expect((await runCli(['run', '--config', s.cfg])).code).toBe(0);
    const parts = listParts(s.out);
    const before = { table: await stateTable(s.client), json: await stateJson(s.cfg) };
    const offset = JSON.parse(before.json).offset as { ts: string };
    expect(offset).not.toBeNull();

    const out = await tune(s.cfg, '--sample-rows', '1000');
    expect(out.sample.source).toBe('history');
    // The last 1 000 rows before now() - safetyLag: all of them exported already, before the offset.
    expect(out.sampleRows).toBe(1000);
    expect(out.sample.start!.ts < offset.ts).toBe(true);
    expect(out.sample.end.ts >= offset.ts).toBe(true);
    expect(out.results.every((r) => r.rows === 1000)).toBe(true);

    expect(await stateTable(s.client)).toEqual(before.table);
    expect(await stateJson(s.cfg)).toBe(before.json);
    expect(listParts(s.out)).toEqual(parts);
  });

  it('by default, on a table smaller than the default sample, reads all of it without a sizing trial', async () => {
    const s = await setup('tune_default', 2000);
    const out = await tune(s.cfg);
    expect(out.sampleRows).toBe(2000);
    // No offset and nothing older than lookbackPeriod: that is the whole window.
    expect(out.sample).toMatchObject({ source: 'window', end: { key: null }, firstRowsPerSec: null });
    // Once the offset is current, the same table is sampled from its first row.
    expect((await runCli(['run', '--config', s.cfg])).code).toBe(0);
    const after = await tune(s.cfg);
    expect(after.sampleRows).toBe(2000);
    expect(after.sample).toMatchObject({ source: 'history', start: null, firstRowsPerSec: null });
  });

  it('compares a configured fetchSize with 5000 at the chosen worker count', async () => {
    const s = await setup('tune_fetch', 2000, {}, { fetchSize: 1000 });
    const out = await tune(s.cfg, '--sample-rows', '1000');
    const at = out.results.filter((r) => r.workers === out.recommended.workers);
    expect(at.map((r) => [r.fetchSize, r.runs.length])).toEqual([[1000, 6], [5000, 3]]);
    expect(out.results.filter((r) => r.workers !== out.recommended.workers).every((r) => r.fetchSize === 1000 && r.runs.length === 3)).toBe(true);
    expect([1000, 5000]).toContain(out.recommended.fetchSize);
  });

  it('prints the sampled range and a recommendation as text', async () => {
    const s = await setup('tune_text', 2000);
    const r = await runCli(['tune', '--config', s.cfg, '--sample-rows', '1000']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^sampled 1,000 rows of the window, from \S+ to \S+$/);
    expect(lines[2]).toMatch(/^recommended: workers: \d+, source\.fetchSize: 5000 \(/);
    expect(lines[3]).toMatch(/^current workers: 2 \(set in the config\): /);
  });
});

describe('tune --sample-rows must be a positive integer (exit 2, one line)', () => {
  it.each(['1.5', '0', 'abc', '-3', ''])('%j', async (value) => {
    // Refused before any connection: the database need not exist.
    const dir = tempDir('tune-flags');
    const cfg = writeConfig(dir, { source: { url: 'postgres://127.0.0.1:1/none' }, logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }] });
    const r = await runCli(['tune', '--config', cfg, `--sample-rows=${value}`]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `logship: --sample-rows: must be a positive integer (got ${JSON.stringify(value)})\n` });
  });
});
