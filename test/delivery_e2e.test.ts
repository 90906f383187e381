import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { NewRelicLogApi } from './helpers/platforms/newrelic_server.js';
import { killWhen } from './helpers/wait.js';

/**
 * What a process adds to the delivery contract (test/contract/delivery.test.ts proves the exporters
 * themselves, in process): exit codes, the stored offset, the one-line message, secrets kept out
 * of the output, and kill -9 within the in-shard acknowledgement bound. Every document exporter
 * shares the core and the runner that make these, so one destination proves them: New Relic,
 * the lightest fake (no SDK to load).
 */

const API_KEY = 'NRAK-0123456789ABCDEFGHIJ';
const env = { NEWRELIC_API_KEY: API_KEY };
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let url: string;
let client: pg.Client;
let sourceKeys: string[];
let api: NewRelicLogApi;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('delivery_e2e'));
  await seedKestraLogs(client, { rows: 3000, start: isoAgo(3 * 3600), spanSeconds: 2 * 3600 });
  sourceKeys = (await client.query<{ key: string }>('SELECT key FROM logs')).rows.map((x) => x.key);
  api = await new NewRelicLogApi(API_KEY).start();
});
afterAll(async () => {
  await api?.stop();
  await client?.end();
});

let n = 0;
function config(extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  api.logs.length = 0;
  const dir = tempDir('e2e');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000, offsetKey: `e2e-${++n}`, shardAttempts: 1, ...top,
    logExporters: [{
      id: 'nr', type: 'newrelic', basePath: api.url, apiKey: "{{ secret('NEWRELIC_API_KEY') }}", chunk: 100, concurrency: 2,
      minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter: path.join(dir, 'dead'), ...extra,
    }],
  });
  return { dir, file };
}

async function storedState(file: string): Promise<{ offset: unknown; unfinishedRun: { done: number[] } | null }> {
  const r = await runCli(['state', '--config', file, '--json'], { env });
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { offset: unknown; unfinishedRun: { done: number[] } | null };
}

describe('document exporters as a process', () => {
  it('after a kill -9 mid-run, a rerun resumes: 0 missing, at most workers × concurrency × chunk duplicates, no secret printed', async () => {
    const { file } = config({ chunk: 50, concurrency: 2 }, { source: { url, fetchSize: 50 } });
    await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '30' } }), 'a third of the rows delivered', () => api.logs.length >= 1000);
    expect(api.logs.length).toBeLessThan(sourceKeys.length);
    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('(resumed)');
    expect(rerun.stdout + rerun.stderr).not.toContain(API_KEY);
    const c = compareKeys(sourceKeys, api.keys());
    expect(c.missing).toHaveLength(0);
    expect(c.unexpected).toHaveLength(0);
    console.log(`kill -9: ${c.duplicates} duplicates (bound 2 × 2 × 50 = 200)`);
    expect(c.duplicates).toBeLessThanOrEqual(2 * 2 * 50);
  });

  it('a refused credential: one line naming the shard and the exporter, exit 1, no secret, and the offset does not move', async () => {
    const { file } = config();
    const r = await runCli(['run', '--config', file], { env: { NEWRELIC_API_KEY: 'NRAK-wrong-7777' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^logship: shard \\d+ \\([^)]+\\): newrelic exporter 'nr' \\(${escapeRe(api.url)}\\): HTTP 403: Invalid API key \\(check apiKey: New Relic refused the key\\); the offset stays at the last fully exported shard and a rerun resumes from there$`));
    expect(r.stderr + r.stdout).not.toContain('NRAK-wrong-7777');
    expect(api.logs).toHaveLength(0);
    const state = await storedState(file);
    expect(state.offset).toBeNull();
    expect(state.unfinishedRun?.done ?? []).toEqual([]);
  });

  it('an unreachable host: retried maxAttempts times, then one line naming the exporter, exit 1, offset unmoved', async () => {
    const { file } = config({ basePath: 'http://127.0.0.1:2', maxAttempts: 3 }, { workers: 1 });
    const r = await runCli(['run', '--config', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^logship: shard \d+ \([^)]+\): newrelic exporter 'nr' \(http:\/\/127\.0\.0\.1:2\): ECONNREFUSED; gave up after 3 attempts; the offset stays/);
    expect((await storedState(file)).offset).toBeNull();
  });

  it('dead-lettered documents: exit 3 with one line, the report counts them; allowDeadLetter makes it exit 0', async () => {
    const victim = sourceKeys[1234]!;
    api.refuses = (log) => log.attributes.logship_key === victim;
    try {
      const { dir, file } = config();
      const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/logship: documents were dead-lettered: 1 by 'nr' \(see .*dead\); set allowDeadLetter: true to accept that\n$/);
      expect(compareKeys(sourceKeys, api.keys()).missing).toEqual([victim]);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.nr.deadLettered).toBe(1);
      const allowed = config({ allowDeadLetter: true });
      expect((await runCli(['run', '--config', allowed.file], { env })).code).toBe(0);
    } finally {
      api.refuses = () => false;
    }
  });
});
