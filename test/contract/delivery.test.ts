import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExporterConfig } from '../../src/sinks/definition.js';
import { PermanentExportError } from '../../src/core/errors.js';
import { acksInShard, createExporter, SINKS } from '../../src/sinks/registry.js';
import { exportRows, failureOf } from '../helpers/in_process.js';
import type { InShardAck, ShardDeliveryContext } from '../../src/sinks/delivery/types.js';
import { tempDir } from '../helpers/cli.js';
import { compareKeys } from '../helpers/delivery_check.js';
import { exporterConfig } from '../helpers/exporter_config.js';
import { batchesOf, kestraRows, shardOf } from '../helpers/rows.js';
import { CONTRACT_FIXTURES, NO_RETRY_AFTER, type ContractPlatform } from './platforms.js';

/**
 * The delivery contract every document-shaped destination of the registry keeps, proved in process
 * against its fake platform: the exporter is created from its parsed config as the run creates it,
 * checked, and given a shard's rows in the reader's batches (createExporter → check → openShard →
 * write → finish). What a process adds (exit codes, the offset, kill -9) is proved once, for one
 * destination, in test/delivery_e2e.test.ts.
 */

const DOCUMENT_SINKS = SINKS.filter((d) => d.shape === 'documents').map((d) => d.type);

it('every document-shaped destination of the registry has a contract fixture', () => {
  expect(DOCUMENT_SINKS.filter((t) => CONTRACT_FIXTURES[t] === undefined)).toEqual([]);
  expect(DOCUMENT_SINKS.length).toBeGreaterThanOrEqual(11);
});

describe.each(DOCUMENT_SINKS)('%s: the delivery contract', (type) => {
  let platform: ContractPlatform;
  beforeEach(async () => {
    platform = await CONTRACT_FIXTURES[type]!();
  });
  afterEach(async () => {
    await platform.stop();
    platform.server.assertFaultsDelivered();
  });

  const rows = kestraRows(600);
  const config = (options: Record<string, unknown>, delivery: Record<string, unknown> = {}) => exporterConfig({
    id: 'c', type, ...options, chunk: 50, concurrency: 3, maxAttempts: 8, minBackoff: 'PT0.001S', maxBackoff: 'PT0.005S',
    deadLetter: path.join(tempDir('contract'), 'dead'), ...delivery,
  });
  /** What the run gives an exporter: an acknowledgement callback where it acknowledges in-shard. */
  const runContext = (c: ExporterConfig): ShardDeliveryContext | undefined => (acksInShard(c) ? { acknowledge: async () => {} } : undefined);
  const dataRequests = () => platform.server.requests.filter((r) => platform.isData(r));

  it('delivers every row exactly once, and reports the rows', async () => {
    const options = await platform.options();
    const c = config(options);
    const result = await exportRows(c, rows, runContext(c));
    expect(result).toMatchObject({ exporterId: 'c', rows: rows.length, deadLettered: 0 });
    expect(compareKeys(rows.map((r) => r.key), await platform.keys(options))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it("loses nothing to the platform's transient faults (throttling, 5xx, a dropped connection) and duplicates nothing", async () => {
    const options = await platform.options();
    const c = config(options);
    platform.injectFaults();
    const result = await exportRows(c, rows, runContext(c));
    platform.server.assertFaultsDelivered();
    expect(result.rows).toBe(rows.length);
    expect(compareKeys(rows.map((r) => r.key), await platform.keys(options))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it.skipIf(NO_RETRY_AFTER.includes(type))('waits as long as the platform asks (Retry-After), not the much shorter backoff', async () => {
    const options = await platform.options();
    const c = config(options, { concurrency: 1 });
    const before = dataRequests().length;
    platform.server.failNext([platform.throttle!(0.4)], (r) => platform.isData(r));
    await exportRows(c, rows.slice(0, 120), runContext(c));
    const [throttled, resent] = dataRequests().slice(before);
    // The resend is the next data request (one in flight); maxBackoff is 5 ms, so only Retry-After explains the wait.
    expect(resent!.at - throttled!.at).toBeGreaterThanOrEqual(400);
    expect(compareKeys(rows.slice(0, 120).map((r) => r.key), await platform.keys(options))).toEqual({ missing: [], unexpected: [], duplicates: 0 });
  });

  it('a refused credential fails at once, permanently, with one line naming the exporter and not the secret', async () => {
    const options = await platform.options();
    const wrong = platform.wrongCredential(options);
    const before = platform.server.requests.length;
    const failure = await failureOf(exportRows(config(wrong.options, { concurrency: 1, maxAttempts: 6 }), rows, undefined));
    expect(failure).toBeInstanceOf(PermanentExportError);
    expect(failure.message).toMatch(wrong.message);
    expect(failure.message).not.toContain('\n');
    expect(failure.message).not.toContain(wrong.secret);
    expect(await platform.keys(options)).toEqual([]);
    // Not retried: maxAttempts is 6; a check, a token and one data request at most.
    expect(platform.server.requests.length - before).toBeLessThanOrEqual(3);
  });

  it('an unreachable host is retried maxAttempts times, then fails naming the exporter (not permanently: a rerun may pass)', async () => {
    const options = platform.unreachable(await platform.options());
    const failure = await failureOf(exportRows(config(options, { maxAttempts: 3 }), rows.slice(0, 10), undefined));
    expect(failure).not.toBeInstanceOf(PermanentExportError);
    expect(failure.message.startsWith(`${type} exporter 'c' (`)).toBe(true);
    expect(failure.message).toMatch(/ECONNREFUSED/);
    expect(failure.message).toMatch(/; gave up after 3 attempts$/);
  });

  it('a crash mid-shard: the rerun resumes where the acknowledgements stopped, loses nothing and resends at most concurrency × chunk rows', async () => {
    const options = await platform.options();
    const [chunk, concurrency] = [20, 2];
    const c = config(options, { chunk, concurrency });
    const acks: InShardAck[] = [];
    let crashed = false;
    const context: ShardDeliveryContext | undefined = acksInShard(c) ? { acknowledge: async (a) => void (crashed || acks.push(a)) } : undefined;
    const exporter = await createExporter(c);
    await exporter.check();
    const writer = exporter.openShard(shardOf(rows), undefined, context);
    const before = dataRequests().length;
    for (const batch of batchesOf(rows, 100)) {
      await writer.write(batch);
      if (dataRequests().length - before >= 8) break;
    }
    // The crash: acknowledgements from here on are never stored; requests in flight still land.
    crashed = true;
    await writer.abort();
    await exporter.close();
    expect(dataRequests().length - before).toBeLessThan(rows.length / chunk);

    const resume = acks.at(-1);
    const result = await exportRows(c, rows, context ? { resume, acknowledge: async () => {} } : undefined);
    expect(result.rows).toBe(rows.length);
    const seen = compareKeys(rows.map((r) => r.key), await platform.keys(options));
    expect({ missing: seen.missing, unexpected: seen.unexpected }).toEqual({ missing: [], unexpected: [] });
    const resent = seen.duplicates + (platform.droppedResends?.() ?? 0);
    if (acksInShard(c)) {
      expect(resume).toBeDefined();
      expect(resent).toBeLessThanOrEqual(concurrency * chunk);
    } else {
      expect(seen.duplicates).toBe(0); // the platform dedupes by the row key
    }
  });
});
