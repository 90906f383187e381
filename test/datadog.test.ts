import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { runCli, tempDir } from './helpers/cli.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { compareKeys } from './helpers/delivery_check.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows } from './helpers/in_process.js';
import { DatadogIntake } from './helpers/platforms/datadog_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * Datadog's wire format and limits, in process against the intake fake. The delivery contract
 * (faults, Retry-After, a wrong key, an unreachable host, a crash) is test/contract's; exit codes,
 * the offset and kill -9 are test/delivery_e2e.test.ts's.
 */

const API_KEY = 'dd-api-key-0123456789abcdef';
const env = { DD_KEY: API_KEY, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

let intake: DatadogIntake;
beforeAll(async () => {
  intake = await new DatadogIntake(API_KEY).start();
});
afterAll(() => intake.stop());

function config(extra: Record<string, unknown> = {}) {
  intake.logs.length = 0;
  intake.requests.length = 0;
  intake.refuses = () => false;
  const deadLetter = path.join(tempDir('dd'), 'dead');
  return { deadLetter, config: exporterConfig({ id: 'dd', type: 'datadog', basePath: intake.url, apiKey: API_KEY, chunk: 100, concurrency: 2, minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter, ...extra }) };
}

describe('datadog exporter', () => {
  it('delivers every row once as a Datadog log: message, status, exact timestamp, service, Kestra attributes, row key', async () => {
    const rows = kestraRows(1500);
    const { config: c } = config({ ddtags: ['env:test', 'team:data'] });
    expect((await exportRows(c, rows)).rows).toBe(1500);
    expect(compareKeys(rows.map((r) => r.key), intake.keys())).toEqual({ missing: [], unexpected: [], duplicates: 0 });
    const status: Record<string, string> = { TRACE: 'debug', DEBUG: 'debug', INFO: 'info', WARN: 'warning', ERROR: 'error' };
    const byKey = new Map(rows.map((r) => [r.key, r.doc]));
    for (const log of intake.logs) {
      const doc = byKey.get(log.logship_key as string)!;
      expect(log.message).toBe(doc.message);
      expect(log.status).toBe(status[doc.level as string]);
      expect(log.timestamp).toBe(doc.timestamp);
      expect(log.service).toBe(doc.namespace);
      expect(log.ddsource).toBe('kestra');
      expect(log.ddtags).toBe('env:test,team:data');
      for (const f of ['tenantId', 'namespace', 'flowId', 'taskId', 'executionId', 'taskRunId', 'attemptNumber', 'triggerId', 'thread', 'executionKind', 'level']) expect(log[f]).toEqual(doc[f]);
    }
    expect(intake.requests.every((p) => p.headers['content-encoding'] === 'gzip' && p.headers['content-type'] === 'application/json')).toBe(true);
    expect(intake.maxRequestLogs).toBe(100);
    expect(intake.oversizeLogs).toBe(0);
  });

  it('narrows a 400 down to the one log Datadog refuses and dead-letters it with the status and reason', async () => {
    const rows = kestraRows(1500);
    const victim = rows[1234]!;
    const { config: c, deadLetter } = config();
    intake.refuses = (log) => log.logship_key === victim.key;
    const result = await exportRows(c, rows);
    expect(result).toMatchObject({ rows: 1499, deadLettered: 1 });
    const seen = compareKeys(rows.map((r) => r.key), intake.keys());
    expect(seen.missing).toEqual([victim.key]);
    expect(seen.duplicates).toBe(0);
    const records = deadLetterRecords(deadLetter);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ exporter: 'dd', key: victim.key, timestamp: victim.doc.timestamp, status: 400, reason: 'HTTP 400: Bad Request: log rejected by intake' });
    expect((records[0]!.document as Record<string, unknown>).logship_key).toBe(victim.key);
  });

  it('truncates a message over 1 MB as Datadog would (marked), dead-letters a log whose attributes alone pass 1 MB', async () => {
    const rows: TestRow[] = kestraRows(20);
    rows[0]!.doc.message = 'é'.repeat(700_000);
    rows[19]!.doc.thread = 't'.repeat(1_100_000);
    const { config: c, deadLetter } = config({ type: 'io.kestra.plugin.ee.datadog.LogExporter', chunk: 1000 }); // Kestra's type name
    expect(await exportRows(c, rows)).toMatchObject({ rows: 19, deadLettered: 1 });
    expect(intake.logs).toHaveLength(19);
    expect(intake.oversizeLogs).toBe(0);
    const cut = intake.logs.find((l) => l.logship_key === rows[0]!.key)!;
    expect(cut.logship_truncated).toBe(true);
    expect((cut.message as string).length).toBeGreaterThan(400_000);
    expect('é'.repeat((cut.message as string).length)).toBe(cut.message);
    const records = deadLetterRecords(deadLetter);
    expect(records.map((x) => x.key)).toEqual([rows[19]!.key]);
    expect(records[0]!.reason).toMatch(/^log is \d+ bytes even with an empty message; Datadog accepts at most 1000000 bytes per log$/);
  });
});

describe('datadog exporter: the Kestra documentation flow', () => {
  it('plans 02-datadog.yaml as written, its secrets from the environment, and prints no secret', async () => {
    const { url, client } = await freshDatabase('datadog_plan');
    await seedKestraLogs(client, { rows: 50, start: isoAgo(3600), spanSeconds: 600 });
    try {
      const flow = path.resolve('fixtures/kestra-flows/docs-examples/02-datadog.yaml');
      const flowEnv = { ...env, LOGSHIP_SOURCE_URL: url, DATADOG_INSTANCE_URL: intake.url, DATADOG_APIK_KEY: API_KEY };
      const plan = await runCli(['plan', '--config', flow], { env: flowEnv });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('***/api/v2/logs'); // basePath is a secret in this flow
      expect(plan.stdout).not.toContain(intake.url);
      // Only the plan: running the flow as written (every INFO+ row once) is test/kestra_examples.test.ts's '02 Datadog'.
    } finally {
      await client.end();
    }
  });
});

describe('datadog exporter: configuration errors', () => {
  function errorOf(exporter: Record<string, unknown>): string {
    try {
      loadConfigText(YAML.stringify({ logExporters: [{ id: 'a', type: 'datadog', apiKey: 'k', ...exporter }] }), { secrets: { env: {}, secretsDir: undefined } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }
  it.each([
    ['no API key', { apiKey: undefined }, 'logExporters[0].apiKey: is required'],
    ['a basePath that is not a URL', { basePath: 'intake.datadoghq.com' }, 'logExporters[0].basePath: must be an http:// or https:// URL (got "intake.datadoghq.com")'],
    ['more than 1000 logs per request', { chunk: 1001 }, 'logExporters[0].chunk: must be an integer from 1 to 1000 (got 1001)'],
    ['ddtags that are not tags', { ddtags: 42 }, 'logExporters[0].ddtags: must be a string of comma-separated tags (env:prod,team:data) or a list of tags (got 42)'],
    ['a tag with a space', { ddtags: 'env:prod,team: data' }, 'logExporters[0].ddtags: each tag must be a non-empty key:value without spaces or commas (got "team: data")'],
    ['an unknown compression', { compression: 'zstd' }, 'logExporters[0].compression: must be one of gzip, none (got "zstd")'],
  ])('%s', (_what, exporter, message) => {
    expect(errorOf(exporter)).toBe(message);
  });
});
