import path from 'node:path';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freePort } from '../src/demo/embedded_pg.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { tsToMicros } from '../src/core/keyset.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { startBulkServer, type BulkServer } from './helpers/bulk_server.js';
import { parseExposition, PushgatewayServer, sampleValue } from './helpers/platforms/pushgateway_server.js';
import { waitFor, within } from './helpers/wait.js';

let db: { url: string; client: pg.Client };
let es: BulkServer;
let gateway: PushgatewayServer;

beforeAll(async () => {
  db = await freshDatabase('metrics');
  await seedKestraLogs(db.client, { rows: 8000, start: isoAgo(7200), spanSeconds: 3600 });
  es = await startBulkServer();
  gateway = await new PushgatewayServer().start();
});
afterAll(async () => {
  await es.stop();
  await gateway.stop();
  await db.client.end();
});

function config(dir: string, offsetKey: string) {
  return writeConfig(dir, {
    source: { url: db.url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey,
    logExporters: [
      { id: 'files', type: 'file', directory: path.join(dir, 'out') },
      { id: 'es', type: 'elasticsearch', indexName: 'kestra-logs', chunk: 300, connection: { hosts: [es.endpoint] } },
    ],
  });
}

describe('Prometheus metrics', () => {
  it('serves /metrics mid-run and pushes final counts equal to the report', async () => {
    const dir = tempDir('metrics');
    const port = await freePort();
    const reportFile = path.join(dir, 'report.json');
    const run = startCli(['run', '--config', config(dir, 'metrics-a'), '--report', reportFile, '--metrics-port', String(port), '--pushgateway', gateway.url, '--progress-interval', '0.2'], {
      env: { LOGSHIP_TEST_BATCH_DELAY_MS: '30' },
    });
    // Mid-run: the run is "running" and some shards are done, not all.
    let mid: ReturnType<typeof parseExposition> = [];
    await waitFor('a scrape showing finished shards while the run is still going', async () => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      if (!text) return false;
      mid = parseExposition(text);
      return (sampleValue(mid, 'logship_rows_done_total', { offset_key: 'metrics-a' }) ?? 0) > 0;
    });
    expect(sampleValue(mid, 'logship_run_status', { offset_key: 'metrics-a', status: 'running' })).toBe(1);
    expect(sampleValue(mid, 'logship_rows_done_total')).toBeLessThan(8000);
    expect(sampleValue(mid, 'logship_rows_planned', { offset_key: 'metrics-a' })).toBeGreaterThan(0);

    const r = await within('the run to finish', run.done);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { rows: number; offsetAfter: { ts: string }; exporters: Record<string, { rows: number; bytes: number }> };
    const pushed = gateway.groups.get('job/logship/offset_key/metrics-a')!;
    expect(pushed).toBeDefined();
    expect(sampleValue(pushed, 'logship_run_status', { status: 'ok' })).toBe(1);
    expect(sampleValue(pushed, 'logship_run_status', { status: 'running' })).toBe(0);
    expect(sampleValue(pushed, 'logship_rows_done_total')).toBe(report.rows);
    for (const id of ['files', 'es']) {
      expect(sampleValue(pushed, 'logship_rows_exported_total', { exporter: id })).toBe(report.exporters[id]!.rows);
      expect(sampleValue(pushed, 'logship_exported_bytes_total', { exporter: id })).toBe(report.exporters[id]!.bytes);
    }
    expect(sampleValue(pushed, 'logship_requests_total', { exporter: 'es', outcome: 'ok' })).toBe(es.bulkRequests);
    expect(sampleValue(pushed, 'logship_offset_timestamp_seconds')).toBeCloseTo(tsToMicros(report.offsetAfter.ts) / 1e6, 3);
    expect(sampleValue(pushed, 'logship_last_success_timestamp_seconds')).toBeGreaterThan(0);
    expect(sampleValue(pushed, 'logship_shard_duration_seconds_count')).toBe(8);
    // logship's labels are offset_key, exporter, outcome, reason (and the histogram's le): nothing per row or shard.
    for (const s of pushed.filter((x) => x.name.startsWith('logship_'))) for (const l of Object.keys(s.labels)) expect(['offset_key', 'exporter', 'outcome', 'reason', 'le', 'status', 'job', 'instance']).toContain(l);
  });

  it('counts rows and bytes read while a shard is still running, not only when it finishes', async () => {
    const dir = tempDir('metrics-batch');
    const port = await freePort();
    // One shard on one worker: before this counter, /metrics showed 0 rows until the run's end.
    const cfg = writeConfig(dir, {
      source: { url: db.url, fetchSize: 200 }, lookbackPeriod: 'P1D', workers: 1, offsetKey: 'metrics-batch',
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
    const reportFile = path.join(dir, 'report.json');
    const run = startCli(['run', '--config', cfg, '--report', reportFile, '--metrics-port', String(port)], { env: { LOGSHIP_TEST_BATCH_DELAY_MS: '40' } });
    let mid: ReturnType<typeof parseExposition> = [];
    await waitFor('a scrape with rows read while the one shard runs', async () => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      if (!text) return false;
      mid = parseExposition(text);
      return (sampleValue(mid, 'logship_rows_read_total') ?? 0) > 0;
    });
    expect(sampleValue(mid, 'logship_rows_done_total')).toBe(0);
    expect(sampleValue(mid, 'logship_run_status', { status: 'running' })).toBe(1);
    expect(sampleValue(mid, 'logship_rows_read_total')).toBeLessThan(8000);
    expect(sampleValue(mid, 'logship_read_bytes_total')).toBeGreaterThan(0);
    const r = await within('the run to finish', run.done);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { rows: number; runs: { shards: number }[] };
    expect(report.runs.map((x) => x.shards)).toEqual([1]);
    expect(report.rows).toBe(8000);
  });

  it('counts retried requests and dead letters by reason', async () => {
    const dir = tempDir('metrics-dl');
    let first = true;
    es.requestStatus = () => (first ? ((first = false), 503) : undefined);
    const victimRow = await db.client.query<{ key: string }>('SELECT key FROM logs ORDER BY key LIMIT 1');
    const victim = victimRow.rows[0]!.key;
    es.itemStatus = (id) => (id === victim ? 400 : undefined);
    const cfg = config(dir, 'metrics-b');
    const r = await runCli(['run', '--config', cfg, '--pushgateway', gateway.url, '--report', path.join(dir, 'r.json')], {
      env: { LOGSHIP_TEST_BATCH_DELAY_MS: '0' },
    });
    es.requestStatus = () => undefined;
    es.itemStatus = () => undefined;
    expect(r.code).toBe(3);
    const pushed = gateway.groups.get('job/logship/offset_key/metrics-b')!;
    expect(sampleValue(pushed, 'logship_retries_total', { exporter: 'es' })).toBe(1);
    expect(sampleValue(pushed, 'logship_requests_total', { exporter: 'es', outcome: 'retried' })).toBe(1);
    expect(sampleValue(pushed, 'logship_dead_letters_total', { exporter: 'es', reason: 'status_400' })).toBe(1);
    expect(sampleValue(pushed, 'logship_requests_total', { exporter: 'es', outcome: 'dead_lettered' })).toBe(1);
  });

  it('refuses a bad --metrics-port and --pushgateway with one line', async () => {
    const dir = tempDir('metrics-bad');
    const cfg = config(dir, 'metrics-c');
    const a = await runCli(['run', '--config', cfg, '--metrics-port', '70000']);
    expect([a.code, a.stderr]).toEqual([2, 'logship: --metrics-port: must be a port number from 0 to 65535 (got "70000")\n']);
    const b = await runCli(['run', '--config', cfg, '--pushgateway', 'gateway:9091']);
    expect([b.code, b.stderr]).toEqual([2, 'logship: --pushgateway: must be an http:// or https:// URL (got "gateway:9091")\n']);
  });
});
