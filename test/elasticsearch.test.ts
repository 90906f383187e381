import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { runCli, startCli, tempDir, writeConfig } from './helpers/cli.js';
import { killWhen } from './helpers/wait.js';
import { startBulkServer, type BulkServer } from './helpers/bulk_server.js';

let url: string;
let client: pg.Client;
/** key -> value text, the source as the cluster must end up holding it. */
let source: Map<string, string>;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('elastic'));
  // Two event-time days, so daily indices really split.
  await seedKestraLogs(client, { rows: 3000, start: isoAgo(36 * 3600), spanSeconds: 35 * 3600 });
  const r = await client.query<{ key: string; v: string }>(`SELECT key, value::text AS v FROM logs`);
  source = new Map(r.rows.map((x) => [x.key, x.v]));
});
afterAll(() => client.end());

let n = 0;
function config(server: BulkServer, type: string, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = tempDir('es');
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P2D', workers: 2, rowsPerShard: 1000, offsetKey: `es-${++n}`, ...top,
    logExporters: [{
      id: 'es', type, indexName: 'kestra-logs-{yyyy.MM.dd}', chunk: 250, concurrency: 3, deadLetter: path.join(dir, 'dead'),
      connection: { hosts: [server.endpoint], basicAuth: { username: 'kestra_user', password: "{{ secret('ES_PASSWORD') }}" } }, ...extra,
    }],
  });
  return { dir, file };
}
const env = { ES_PASSWORD: 'right-password-1' };
const auth = { username: 'kestra_user', password: 'right-password-1' };

function expectClusterMatchesSource(server: BulkServer): void {
  expect(server.count()).toBe(source.size);
  for (const [index, docs] of server.docs) {
    for (const [id, doc] of docs) {
      expect(doc).toBe(source.get(id));
      // Daily index from the row's event time.
      expect(index).toBe(`kestra-logs-${(JSON.parse(doc).timestamp as string).slice(0, 10).replace(/-/g, '.')}`);
    }
  }
}

describe.each(['elasticsearch', 'opensearch'])('%s exporter', (type) => {
  it('indexes every row once into daily indices, _id from the row key', async () => {
    const server = await startBulkServer(auth);
    try {
      const { file } = config(server, type);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expect(server.docs.size).toBe(new Set([...source.values()].map((v) => JSON.parse(v).timestamp.slice(0, 10))).size);
      expect(server.docs.size).toBeGreaterThanOrEqual(2);
      expectClusterMatchesSource(server);
      expect(server.bulkRequests).toBeGreaterThanOrEqual(Math.ceil(source.size / 250));
    } finally {
      await server.stop();
    }
  });

  it('a storm of 429s (whole requests and single items) loses 0 documents', async () => {
    const server = await startBulkServer(auth);
    server.requestStatus = (i) => (i % 5 === 1 ? 429 : i % 9 === 0 ? 503 : undefined);
    server.itemStatus = (id, _doc, attempt) => (id.charCodeAt(3) % 3 === 0 && attempt === 1 ? 429 : undefined);
    try {
      const { file } = config(server, type);
      const r = await runCli(['run', '--config', file], { env });
      expect(r.code).toBe(0);
      expectClusterMatchesSource(server);
    } finally {
      await server.stop();
    }
  });
});

describe('elasticsearch exporter: failures', () => {
  let server: BulkServer;
  beforeAll(async () => {
    server = await startBulkServer(auth);
  });
  afterAll(() => server.stop());

  it('dead-letters exactly the document that got a 400, and exits 3 unless allowDeadLetter', async () => {
    const victim = [...source.keys()][1234]!;
    server.docs.clear();
    server.itemStatus = (id) => (id === victim ? 400 : undefined);
    const { dir, file } = config(server, 'elasticsearch');
    const r = await runCli(['run', '--config', file, '--report', path.join(dir, 'r.json')], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/logship: documents were dead-lettered: 1 by 'es' \(see .*dead\); set allowDeadLetter: true to accept that\n$/);
    expect(server.count()).toBe(source.size - 1);
    const deadFiles = fs.readdirSync(path.join(dir, 'dead'));
    expect(deadFiles).toHaveLength(1);
    const lines = fs.readFileSync(path.join(dir, 'dead', deadFiles[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ _id: victim, status: 400, reason: 'mapper_parsing_exception: failed to parse field [message] of type [long]' });
    expect(JSON.stringify(lines[0].document)).toBe(JSON.stringify(JSON.parse(source.get(victim)!)));
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).exporters.es.deadLettered).toBe(1);

    server.docs.clear();
    const allowed = config(server, 'elasticsearch', { allowDeadLetter: true });
    expect((await runCli(['run', '--config', allowed.file], { env })).code).toBe(0);
    server.itemStatus = () => undefined;
  });

  it('a kill -9 mid-run, then a rerun, leaves a document count equal to the source', async () => {
    server.docs.clear();
    const { file } = config(server, 'elasticsearch', { chunk: 100, concurrency: 1 }, { source: { url, fetchSize: 100 } });
    await killWhen(startCli(['run', '--config', file], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '40' } }), '750 documents indexed', () => server.count() >= 750);
    expect(server.count()).toBeLessThan(source.size);
    const rerun = await runCli(['run', '--config', file], { env });
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('(resumed)');
    expectClusterMatchesSource(server);
  });

  it('a wrong password gives a one-line error (exit 1) and no secret', async () => {
    const { file } = config(server, 'elasticsearch');
    const r = await runCli(['run', '--config', file], { env: { ES_PASSWORD: 'wrong-password-2' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`logship: elasticsearch exporter 'es' (${server.endpoint}): cannot reach the cluster: HTTP 401 (authentication failed: check connection.basicAuth or apiKey)`);
    expect(r.stderr).not.toContain('wrong-password-2');
  });

  it('prune deletes daily indices older than --keep-days, and --dry-run only lists them', async () => {
    server.docs.clear();
    for (const d of ['2026.11.01', '2026.11.10', '2026.11.20', '2026.11.21']) server.docs.set(`kestra-logs-${d}`, new Map([['x', '{}']]));
    server.docs.set('kestra-logs-notadate', new Map());
    const { file } = config(server, 'elasticsearch');
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
