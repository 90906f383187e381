import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase } from './helpers/db.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';
import { exporterConfig } from './helpers/exporter_config.js';
import { deadLetterRecords, exportRows } from './helpers/in_process.js';
import { startBulkServer, type BulkServer } from './helpers/bulk_server.js';
import { kestraRows, type TestRow } from './helpers/rows.js';

/**
 * `_bulk` as Elasticsearch and OpenSearch answer it (daily indices, `_id` from the row key, per-item
 * statuses), in process through each engine's official client; `prune` as a command. The delivery
 * contract (429 storms, a wrong password, an unreachable cluster, a crash and its rerun) is
 * test/contract's; exit codes and the offset are test/delivery_e2e.test.ts's.
 */

const auth = { username: 'kestra_user', password: 'right-password-1' };
/** Two event-time days, so daily indices really split. */
const rows: TestRow[] = kestraRows(3000, { startMs: Date.now() - 36 * 3600_000, stepMs: 126_000 });

function config(server: BulkServer, type: string, extra: Record<string, unknown> = {}) {
  const deadLetter = path.join(tempDir('es'), 'dead');
  return {
    deadLetter,
    config: exporterConfig({ id: 'es', type, indexName: 'kestra-logs-{yyyy.MM.dd}', chunk: 250, concurrency: 3, deadLetter, connection: { hosts: [server.endpoint], basicAuth: auth }, ...extra }),
  };
}

function expectClusterMatchesSource(server: BulkServer, source: TestRow[]): void {
  expect(server.count()).toBe(source.length);
  const docs = new Map(source.map((r) => [r.key, r.doc]));
  for (const [index, stored] of server.docs) {
    for (const [id, doc] of stored) {
      expect(JSON.parse(doc)).toEqual(docs.get(id));
      // Daily index from the row's event time.
      expect(index).toBe(`kestra-logs-${(docs.get(id)!.timestamp as string).slice(0, 10).replace(/-/g, '.')}`);
    }
  }
}

describe.each(['elasticsearch', 'opensearch'])('%s exporter', (type) => {
  it('indexes every row once into daily indices, _id from the row key', async () => {
    const server = await startBulkServer(auth);
    try {
      await exportRows(config(server, type).config, rows);
      expect(server.docs.size).toBe(new Set(rows.map((r) => (r.doc.timestamp as string).slice(0, 10))).size);
      expect(server.docs.size).toBeGreaterThanOrEqual(2);
      expectClusterMatchesSource(server, rows);
      expect(server.bulkRequests).toBeGreaterThanOrEqual(Math.ceil(rows.length / 250));
    } finally {
      await server.stop();
    }
  });
});

describe('elasticsearch exporter: refusals and prune', () => {
  let server: BulkServer;
  beforeAll(async () => {
    server = await startBulkServer(auth);
  });
  afterAll(() => server.stop());

  it('dead-letters exactly the document that got a 400, with its index, id, status and reason', async () => {
    const victim = rows[1234]!;
    server.docs.clear();
    server.itemStatus = (id) => (id === victim.key ? 400 : undefined);
    try {
      const { config: c, deadLetter } = config(server, 'elasticsearch');
      expect(await exportRows(c, rows)).toMatchObject({ rows: rows.length - 1, deadLettered: 1 });
      expect(server.count()).toBe(rows.length - 1);
      const lines = deadLetterRecords(deadLetter);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ _id: victim.key, _index: `kestra-logs-${(victim.doc.timestamp as string).slice(0, 10).replace(/-/g, '.')}`, status: 400, reason: 'mapper_parsing_exception: failed to parse field [message] of type [long]' });
      expect(lines[0]!.document).toEqual(victim.doc);
    } finally {
      server.itemStatus = () => undefined;
    }
  });

  it('prune deletes daily indices older than --keep-days, and --dry-run only lists them', async () => {
    server.docs.clear();
    for (const d of ['2026.11.01', '2026.11.10', '2026.11.20', '2026.11.21']) server.docs.set(`kestra-logs-${d}`, new Map([['x', '{}']]));
    server.docs.set('kestra-logs-notadate', new Map());
    const { url, client } = await freshDatabase('elastic_prune');
    const dir = tempDir('es-prune');
    const file = writeConfig(dir, {
      source: { url }, lookbackPeriod: 'P2D', offsetKey: 'es-prune',
      logExporters: [{ id: 'es', type: 'elasticsearch', indexName: 'kestra-logs-{yyyy.MM.dd}', connection: { hosts: [server.endpoint], basicAuth: { username: 'kestra_user', password: "{{ secret('ES_PASSWORD') }}" } } }],
    });
    const env = { ES_PASSWORD: auth.password };
    await client.end();
    const today = new Date().toISOString().slice(0, 10);
    const keep = Math.round((Date.parse(today) - Date.parse('2026-11-15')) / 86_400_000);
    const dry = await runCli(['prune', '--config', file, '--exporter', 'es', '--keep-days', String(keep), '--dry-run'], { env });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe('would delete kestra-logs-2026.11.01\nwould delete kestra-logs-2026.11.10\n2 of 5 indices matching kestra-logs-* are older than ' + keep + (keep === 1 ? ' day' : ' days') + ' (dry run: nothing deleted)\n');
    expect(server.docs.size).toBe(5);
    const real = await runCli(['prune', '--config', file, '--exporter', 'es', '--keep-days', String(keep)], { env });
    expect(real.code).toBe(0);
    expect([...server.docs.keys()].sort()).toEqual(['kestra-logs-2026.11.20', 'kestra-logs-2026.11.21', 'kestra-logs-notadate']);
  });
});
