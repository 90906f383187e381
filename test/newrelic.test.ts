import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows } from './helpers/in_process.js';
import { NewRelicLogApi } from './helpers/platforms/newrelic_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * New Relic's wire format and limits, in process against the Log API fake. The delivery contract
 * (faults, Retry-After, a wrong key, an unreachable host, a crash) is test/contract's; what a
 * process adds (exit codes, the offset, kill -9) is test/delivery_e2e.test.ts's, on this destination.
 */

const API_KEY = 'NRAK-0123456789ABCDEFGHIJ';
const env = { NEWRELIC_API_KEY: API_KEY };

let api: NewRelicLogApi;
beforeAll(async () => {
  api = await new NewRelicLogApi(API_KEY).start();
});
afterAll(() => api.stop());

function config(extra: Record<string, unknown> = {}) {
  api.logs.length = 0;
  api.requests.length = 0;
  const deadLetter = path.join(tempDir('nr'), 'dead');
  return { deadLetter, config: exporterConfig({ id: 'nr', type: 'newrelic', basePath: api.url, apiKey: API_KEY, chunk: 100, concurrency: 2, deadLetter, ...extra }) };
}

describe('newrelic exporter', () => {
  it('delivers every row once in the detailed payload: common attributes, ms timestamp, exact time, level, Kestra attributes, row key', async () => {
    const rows = kestraRows(1500);
    const { config: c } = config({ commonAttributes: { environment: 'test' } });
    expect((await exportRows(c, rows)).rows).toBe(1500);
    expect(compareKeys(rows.map((r) => r.key), api.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const byKey = new Map(rows.map((r) => [r.key, r]));
    for (const log of api.logs) {
      const row = byKey.get(log.attributes.logship_key as string)!;
      expect(log.message).toBe(row.doc.message);
      expect(log.timestamp).toBe(Math.floor(row.tsMicros / 1000));
      expect(log.attributes.logship_timestamp).toBe(row.doc.timestamp);
      expect(log.attributes.logtype).toBe('kestra');
      expect(log.attributes.environment).toBe('test');
      expect(log.attributes.timestamp).toBeUndefined();
      expect(log.attributes.message).toBeUndefined();
      for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind', 'level']) expect(log.attributes[f]).toEqual(row.doc[f]);
    }
    expect(api.requests.every((p) => p.headers['content-encoding'] === 'gzip' && p.headers['api-key'] === API_KEY)).toBe(true);
  });

  it('never sends a POST over 1 MB: uncompressed requests that would pass it are halved before sending', async () => {
    // Requests are built to just over 1 MB of JSON here, so each must be halved before it is sent.
    const { config: c } = config({ compression: 'none', chunk: 5000 });
    const rows = kestraRows(3000);
    await exportRows(c, rows, undefined, 3000);
    expect(compareKeys(rows.map((r) => r.key), api.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    expect(api.requests.every((q) => q.raw.length <= 1_000_000)).toBe(true);
    expect(api.maxPostBytes).toBeGreaterThan(250_000);
    expect(api.requests.every((q) => q.headers['content-encoding'] === undefined)).toBe(true);
  });

  it('cuts a long message to what New Relic stores (marked), and dead-letters a log no POST can carry', async () => {
    const rows: TestRow[] = kestraRows(20);
    // A 2 MB message: New Relic keeps 4,094 characters + 128,000 bytes of it.
    rows[0]!.doc.message = 'é'.repeat(1_000_000);
    // Ten 130 KB attributes: even as New Relic stores them, more than one POST can carry.
    for (let i = 1; i <= 10; i++) rows[19]!.doc[`big${i}`] = 'x'.repeat(130_000);
    const { config: c, deadLetter } = config();
    const result = await exportRows(c, rows);
    expect(result).toMatchObject({ rows: 19, deadLettered: 1 });
    expect(api.logs).toHaveLength(19);
    expect(api.overlongValues).toBe(0);
    const cut = api.logs.find((l) => l.attributes.logship_key === rows[0]!.key)!;
    expect(cut.attributes.logship_truncated).toBe(true);
    expect(cut.message).toBe('é'.repeat(4094 + 64_000));
    const records = deadLetterRecords(deadLetter);
    expect(records.map((x) => x.key)).toEqual([rows[19]!.key]);
    expect(records[0]!.reason).toMatch(/^log is \d+ bytes after New Relic's per-value truncation; one New Relic POST carries at most 1000000 bytes$/);
  });
});

describe('newrelic exporter: the Kestra documentation flow', () => {
  it('plans 10-new-relic.yaml with its basePath pointed at the local Log API', async () => {
    const { url, client } = await freshDatabase('newrelic_plan');
    await seedKestraLogs(client, { rows: 50, start: isoAgo(3600), spanSeconds: 600 });
    try {
      const original = fs.readFileSync(path.resolve('fixtures/kestra-flows/docs-examples/10-new-relic.yaml'), 'utf8');
      expect(original).toContain('basePath: https://log-api.newrelic.com');
      const dir = tempDir('nr-flow');
      const flow = writeConfig(dir, original.replace('basePath: https://log-api.newrelic.com', `basePath: ${api.url}`), 'flow.yaml');
      const flowEnv = { ...env, LOGSHIP_SOURCE_URL: url };
      // Only the plan: running the flow as published (every INFO+ row once) is test/kestra_examples.test.ts's '10 New Relic'.
      const plan = await runCli(['plan', '--config', flow], { env: flowEnv });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('/log/v1');
    } finally {
      await client.end();
    }
  });
});

describe('newrelic exporter: configuration errors', () => {
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ logExporters: [{ id: 'a', type: 'newrelic', apiKey: 'k', ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }
  it.each([
    ['no API key', { apiKey: undefined }, 'logExporters[0].apiKey: is required'],
    ['a basePath that is not a URL', { basePath: 'log-api.newrelic.com' }, 'logExporters[0].basePath: must be an http:// or https:// URL (got "log-api.newrelic.com")'],
    ['common attributes that are not strings', { commonAttributes: { team: 3 } }, 'logExporters[0].commonAttributes.team: must be a non-empty string (got 3)'],
    ['too many common attributes', { commonAttributes: Object.fromEntries(Array.from({ length: 255 }, (_, i) => [`a${i}`, 'v'])) }, 'logExporters[0].commonAttributes: at most 254 attributes (New Relic allows 255 per log, logtype included; got 255)'],
    ['an unknown compression', { compression: 'br' }, 'logExporters[0].compression: must be one of gzip, none (got "br")'],
  ])('%s', (_what, exporter, message) => {
    expect(errorOf(exporter)).toBe(message);
  });
});
