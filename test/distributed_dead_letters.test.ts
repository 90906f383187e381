import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { seedKestraLogs } from '../src/demo/seed.js';
import { DeadLetterFile } from '../src/sinks/delivery/dead_letters.js';
import type { InShardAck } from '../src/sinks/delivery/types.js';
import type { RunManifest } from '../src/state/types.js';
import { compareKeys } from './helpers/delivery_check.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { startCli, tempDir, writeConfig } from './helpers/cli.js';
import { DatadogIntake } from './helpers/platforms/datadog_server.js';
import { waitFor, within } from './helpers/wait.js';

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end()));
});

const keysIn = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { key: string }).key);
const record = (key: string) => ({ exporter: 'dd', key, timestamp: '2026-01-01T00:00:00.000000Z', reason: 'HTTP 400' });

describe('attempt-scoped dead-letter files of document exporters ({exporter}-{shard}-a{n}.ndjson)', () => {
  it('an attempt resuming from an earlier attempt\'s ack copies that file\'s acknowledged prefix into its own, leaving the earlier file to its stale writer', () => {
    const dir = tempDir('ddl-carry');
    const first = new DeadLetterFile(dir, 'dd', '4', undefined, 1);
    first.append(record('k1'), '{"a":1}');
    const acked = first.bytes;
    first.append(record('k2'), '{"a":2}'); // written, never acknowledged
    const second = new DeadLetterFile(dir, 'dd', '4', { bytes: acked, count: 1, attempt: 1 }, 2);
    first.append(record('k3'), '{"a":3}'); // the stale attempt goes on writing its own file only
    second.append(record('k4'), '{"a":4}');
    first.close();
    second.close();
    expect(keysIn(path.join(dir, 'dd-4-a2.ndjson'))).toEqual(['k1', 'k4']);
    expect(second.count).toBe(2);
    expect(keysIn(path.join(dir, 'dd-4-a1.ndjson'))).toEqual(['k1', 'k2', 'k3']);
  });

  it('the finishing attempt removes the local file and earlier attempts\' files, never a newer attempt\'s or another shard\'s', async () => {
    const dir = tempDir('ddl-finish');
    for (const n of ['dd-4.ndjson', 'dd-4-a1.ndjson', 'dd-4-a3.ndjson', 'dd-4-late1-a1.ndjson', 'other-4-a1.ndjson']) fs.writeFileSync(path.join(dir, n), '{"key":"x"}\n');
    const winner = new DeadLetterFile(dir, 'dd', '4', undefined, 2);
    winner.append(record('k1'), '{}');
    await winner.finish();
    expect(fs.readdirSync(dir).sort()).toEqual(['dd-4-a2.ndjson', 'dd-4-a3.ndjson', 'dd-4-late1-a1.ndjson', 'other-4-a1.ndjson']);
  });

  it('a local run resuming from a distributed attempt\'s ack carries its prefix into the bare file and replaces every attempt\'s file', async () => {
    const dir = tempDir('ddl-local');
    const attempt = new DeadLetterFile(dir, 'dd', '4', undefined, 3);
    attempt.append(record('k1'), '{}');
    const acked = attempt.bytes;
    attempt.append(record('k2'), '{}');
    attempt.close();
    const local = new DeadLetterFile(dir, 'dd', '4', { bytes: acked, count: 1, attempt: 3 });
    await local.finish();
    expect(fs.readdirSync(dir)).toEqual(['dd-4.ndjson']);
    expect(keysIn(path.join(dir, 'dd-4.ndjson'))).toEqual(['k1']);
  });

  it('an attempt that does not finish removes its file when no ack of its own can name it, else cuts it back to what it offered', async () => {
    const dir = tempDir('ddl-abort');
    const carried = new DeadLetterFile(dir, 'dd', '5', undefined, 1);
    carried.append(record('k1'), '{}');
    carried.close();
    const unacked = new DeadLetterFile(dir, 'dd', '5', { bytes: carried.bytes, count: 1, attempt: 1 }, 2);
    unacked.append(record('k2'), '{}');
    await unacked.abort(); // the stored ack still names attempt 1's file, which stays
    expect(fs.readdirSync(dir)).toEqual(['dd-5-a1.ndjson']);

    const acking = new DeadLetterFile(dir, 'dd', '5', { bytes: carried.bytes, count: 1, attempt: 1 }, 3);
    acking.append(record('k2'), '{}');
    await acking.sync();
    acking.offered();
    acking.append(record('k3'), '{}');
    await acking.abort();
    expect(keysIn(path.join(dir, 'dd-5-a3.ndjson'))).toEqual(['k1', 'k2']);
  });

  it('a stale attempt whose file the winner already removed does not bring it back when it aborts', async () => {
    const dir = tempDir('ddl-gone');
    const stale = new DeadLetterFile(dir, 'dd', '6', undefined, 1);
    stale.append(record('k1'), '{}');
    await stale.sync();
    stale.offered();
    fs.rmSync(path.join(dir, 'dd-6-a1.ndjson')); // the winner (attempt 2) finished meanwhile
    stale.append(record('k2'), '{}');
    await stale.abort();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses to resume when the file its ack names is missing, naming the file', () => {
    const dir = tempDir('ddl-missing');
    expect(() => new DeadLetterFile(dir, 'dd', '7', { bytes: 120, count: 1, attempt: 1 }, 2))
      .toThrow(`dead-letter file ${path.join(dir, 'dd-7-a1.ndjson')} is missing, but its acknowledged prefix is 120 bytes; cannot resume shard 7 of 'dd'`);
  });
});

describe('document exporters\' dead letters in distributed mode with a stalled worker', () => {
  it('a worker stopped (SIGSTOP) after dead-lettering a refused event and resumed after another finished its shard leaves one record per refused event, in the winner\'s file only, counted once (exit 3)', async () => {
    const { url, client } = await freshDatabase('dist_dead_letters');
    opened.push(client);
    await seedKestraLogs(client, { rows: 3000, start: isoAgo(3700), spanSeconds: 3600, tieGroup: 3 });
    // One refused event early in each of the three shards (in read order: timestamp, key).
    const ordered = (await client.query<{ key: string }>(`SELECT key FROM logs ORDER BY (value->>'timestamp'), key COLLATE "C"`)).rows.map((r) => r.key);
    const refused = [ordered[150]!, ordered[1150]!, ordered[2150]!];
    const intake = await new DatadogIntake('dist-dl-key').start();
    const seen = new Map<string, number>();
    intake.refuses = (log) => {
      const key = log.logship_key as string;
      if (!refused.includes(key)) return false;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      return true;
    };
    try {
      const dir = tempDir('dist-dead-letters');
      const dead = path.join(dir, 'dead');
      const cfg = writeConfig(dir, {
        source: { url, fetchSize: 100 }, lookbackPeriod: 'P1D', workers: 1, rowsPerShard: 1000,
        queue: { shardTimeout: 'PT3S', pollInterval: 'PT0.5S' },
        logExporters: [{ id: 'dd', type: 'datadog', basePath: intake.url, apiKey: 'dist-dl-key', chunk: 50, concurrency: 1, minBackoff: 'PT0.001S', maxBackoff: 'PT0.01S', deadLetter: dead }],
      });
      const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
      const report = path.join(dir, 'report.json');
      const coordinator = startCli(['run', '--config', cfg, '--distributed', '--report', report], { env });
      // A is slow and keeps going past its expiry once resumed, so the fence is what stops it.
      const a = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env: { ...env, LOGSHIP_TEST_BATCH_DELAY_MS: '300', LOGSHIP_TEST_NO_ATTEMPT_EXPIRY: '1' } });
      let aLog = '';
      a.child.stderr!.on('data', (d) => (aLog += d));
      // Stopped once attempt 1 has an ack stored that names its dead-letter file with a record in it.
      const ackOfA = async () => (await client.query<{ shard_index: number; ack: InShardAck }>(
        `SELECT a.shard_index, a.ack FROM logship_state_acks a JOIN logship_state_claims k USING (offset_key, run_id, shard_index)
         WHERE k.worker LIKE $1 AND (a.ack->>'deadLettered')::int >= 1`, [`%:${a.child.pid}`]).catch(() => ({ rows: [] }))).rows[0];
      await waitFor('worker A to acknowledge a dead-lettered event', async () => a.child.exitCode !== null || (await ackOfA()) !== undefined);
      a.child.kill('SIGSTOP');
      expect(a.child.exitCode).toBeNull();
      const { shard_index: stalledShard, ack } = (await ackOfA())!;
      expect(ack.deadLetterAttempt).toBe(1);
      const manifest = (await client.query<{ run: RunManifest }>('SELECT run FROM logship_state')).rows[0]!.run;
      const stalledId = manifest.shards.find((x) => x.index === stalledShard)!.id;
      expect(fs.existsSync(path.join(dead, `dd-${stalledId}-a1.ndjson`))).toBe(true);
      const refusalsBefore = new Map(seen);

      const b = startCli(['worker', '--config', cfg, '--concurrency', '1'], { env });
      const finished = await within('the coordinator to finish', coordinator.done, 100_000);
      expect(finished.code, finished.stderr).toBe(3);
      a.child.kill('SIGCONT');
      await waitFor('worker A to find its attempt superseded', () => aLog.includes('attempt 1 was superseded'));
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      await within('both workers to stop', Promise.all([a.done, b.done]));

      const files = fs.readdirSync(dead).sort();
      expect(files.filter((n) => n.startsWith(`dd-${stalledId}-`) || n === `dd-${stalledId}.ndjson`)).toEqual([`dd-${stalledId}-a2.ndjson`]);
      expect(files.every((n) => /^dd-.+-a\d+\.ndjson$/.test(n))).toBe(true);
      const records = files.flatMap((n) => keysIn(path.join(dead, n)));
      expect(records.sort()).toEqual([...refused].sort());
      // Attempt 2 carried attempt 1's acknowledged record over instead of dead-lettering it again.
      const carried = keysIn(path.join(dead, `dd-${stalledId}-a2.ndjson`));
      expect(carried).toHaveLength(1);
      expect(seen.get(carried[0]!)).toBe(refusalsBefore.get(carried[0]!));
      expect(JSON.parse(fs.readFileSync(report, 'utf8'))).toMatchObject({ status: 'ok', rows: 3000, exporters: { dd: { deadLettered: 3 } } });
      const c = compareKeys(ordered, intake.keys());
      expect(c.missing.sort()).toEqual([...refused].sort());
      expect(c.unexpected).toHaveLength(0);
      // Bounded duplicates: what stalled A had in flight, and the one request it sent on waking.
      expect(c.duplicates).toBeLessThanOrEqual(2 * 50);
    } finally {
      await intake.stop();
    }
  });
});
