import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freePort } from '../src/demo/embedded_pg.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { tsToMicros } from '../src/core/keyset.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { startCli, tempDir, writeConfig } from './helpers/cli.js';
import { parseExposition, PushgatewayServer, sampleValue, type Sample } from './helpers/platforms/pushgateway_server.js';
import { waitFor, within } from './helpers/wait.js';

let db: { url: string; client: pg.Client };
let gateway: PushgatewayServer;

beforeAll(async () => {
  db = await freshDatabase('dist_metrics');
  await seedKestraLogs(db.client, { rows: 4000, start: isoAgo(3700), spanSeconds: 3600 });
  gateway = await new PushgatewayServer().start();
});
afterAll(async () => {
  await gateway.stop();
  await db.client.end();
});

const scrape = async (port: number): Promise<Sample[]> => parseExposition(await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()));
const sum = (groups: Sample[][], name: string, labels: Record<string, string> = {}) => groups.reduce((s, g) => s + (sampleValue(g, name, labels) ?? 0), 0);

function waitReady(worker: ReturnType<typeof startCli>): Promise<void> {
  let text = '';
  return within('a worker to be ready', new Promise<void>((resolve) => worker.child.stderr!.on('data', (d) => {
    text += d;
    if (text.includes('waiting for shard jobs')) resolve();
  })));
}

describe('Prometheus metrics of a distributed run', () => {
  it('the coordinator serves and pushes the run\'s shards by state, rows and offset; each worker pushes its own counts under its own instance, and they add up to the report', async () => {
    const dir = tempDir('dist-metrics');
    const offsetKey = 'dist-metrics';
    const cfg = writeConfig(dir, {
      source: { url: db.url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000, offsetKey,
      queue: { shardTimeout: 'PT60S', pollInterval: 'PT0.5S' },
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const workerPort = await freePort();
    const slow = { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '100' } };
    const a = startCli(['worker', '--config', cfg, '--pushgateway', gateway.url, '--metrics-port', String(workerPort), '--progress-interval', '0.2'], slow);
    const b = startCli(['worker', '--config', cfg, '--pushgateway', gateway.url, '--progress-interval', '0.2'], slow);
    await Promise.all([waitReady(a), waitReady(b)]);

    const port = await freePort();
    const report = path.join(dir, 'report.json');
    const coordinator = startCli(['run', '--config', cfg, '--distributed', '--metrics-port', String(port), '--pushgateway', gateway.url, '--report', report, '--progress-interval', '0.2']);
    // Mid-run: some shards done, not all; every shard is in exactly one state.
    let mid: Sample[] = [];
    await waitFor('a coordinator scrape with a shard done and the run still going', async () => {
      mid = await scrape(port).catch(() => []);
      const done = sampleValue(mid, 'logship_shards', { offset_key: offsetKey, state: 'done' }) ?? 0;
      return done >= 1 && done < 4;
    });
    expect(sampleValue(mid, 'logship_run_status', { offset_key: offsetKey, status: 'running' })).toBe(1);
    expect(['queued', 'running', 'done', 'failed'].reduce((s, state) => s + sampleValue(mid, 'logship_shards', { offset_key: offsetKey, state })!, 0)).toBe(4);
    expect(sampleValue(mid, 'logship_rows_planned', { offset_key: offsetKey })).toBeGreaterThan(0);
    expect(sampleValue(mid, 'logship_rows_done_total', { offset_key: offsetKey })).toBeLessThan(4000);

    const finished = await within('the coordinator to finish', coordinator.done, 100_000);
    expect(finished.code, finished.stderr).toBe(0);
    const r = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; offsetAfter: { ts: string }; exporters: Record<string, { rows: number; bytes: number }> };
    expect(r.rows).toBe(4000);

    // The coordinator's group is the run's (offset_key only, as a local run's).
    const run = gateway.groups.get(`job/logship/offset_key/${offsetKey}`)!;
    expect(sampleValue(run, 'logship_run_status', { status: 'ok' })).toBe(1);
    expect(sampleValue(run, 'logship_shards', { state: 'done' })).toBe(4);
    expect(sampleValue(run, 'logship_shards', { state: 'queued' })).toBe(0);
    expect(sampleValue(run, 'logship_rows_done_total')).toBe(4000);
    expect(sampleValue(run, 'logship_offset_timestamp_seconds')).toBeCloseTo(tsToMicros(r.offsetAfter.ts) / 1e6, 3);
    // It exported nothing itself: the exporters' counts are the workers'.
    expect(sampleValue(run, 'logship_rows_exported_total', { exporter: 'files' })).toBe(0);

    // A worker's scrape, before it stops, shows what it exported so far.
    const scrapedA = await scrape(workerPort);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    const [ra, rb] = await within('both workers to stop', Promise.all([a.done, b.done]));
    expect([ra.code, rb.code]).toEqual([0, 0]);

    // One group per worker process (instance = host:pid): neither push overwrote the other.
    const groupOf = (pid: number | undefined) => gateway.groups.get(`job/logship/offset_key/${offsetKey}/instance/${os.hostname()}:${pid}`);
    const workers = [groupOf(a.child.pid), groupOf(b.child.pid)];
    expect(workers.every((g) => g !== undefined)).toBe(true);
    const pushed = workers as Sample[][];
    expect(sum(pushed, 'logship_rows_exported_total', { exporter: 'files' })).toBe(r.exporters.files!.rows);
    expect(sum(pushed, 'logship_exported_bytes_total', { exporter: 'files' })).toBe(r.exporters.files!.bytes);
    expect(sum(pushed, 'logship_shard_duration_seconds_count')).toBe(4);
    for (const g of pushed) expect(sampleValue(g, 'logship_run_status', { status: 'ok' })).toBe(1);
    expect(sampleValue(scrapedA, 'logship_rows_exported_total', { exporter: 'files' })).toBe(sampleValue(pushed[0]!, 'logship_rows_exported_total', { exporter: 'files' }));
  });

  it('refuses a bad --metrics-port and --pushgateway of a worker with one line', async () => {
    const dir = tempDir('dist-metrics-bad');
    const cfg = writeConfig(dir, { source: { url: db.url }, lookbackPeriod: 'P1D', logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }] });
    const a = await within('the worker to refuse', startCli(['worker', '--config', cfg, '--metrics-port', '70000']).done);
    expect([a.code, a.stderr]).toEqual([2, 'logship: --metrics-port: must be a port number from 0 to 65535 (got "70000")\n']);
    const b = await within('the worker to refuse', startCli(['worker', '--config', cfg, '--pushgateway', 'gateway:9091']).done);
    expect([b.code, b.stderr]).toEqual([2, 'logship: --pushgateway: must be an http:// or https:// URL (got "gateway:9091")\n']);
  });
});
