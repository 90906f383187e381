import type { MessagePort } from 'node:worker_threads';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connectSource } from '../source/connection.js';
import { readWithCopy } from '../source/copy_reader.js';
import { readWithCursor } from '../source/cursor_reader.js';
import { findNonUtf8Row, INVALID_ENCODING } from '../source/diagnose.js';
import { shardDelete, shardSelect, type Filters } from '../source/query.js';
import type { SourceTable } from '../source/table.js';
import type { ShardSpec } from '../plan/shards.js';
import { createExporter } from '../sinks/create.js';
import type { Exporter, ShardWriter } from '../sinks/types.js';
import { shardDoneSql } from '../state/postgres_store.js';
import type { ShardOutcome } from '../state/types.js';

export interface ShardTaskInput {
  config: Config;
  table: SourceTable;
  shard: ShardSpec;
  runId: string;
  progress: MessagePort;
}

export interface ProgressMessage {
  shard: number;
  rows: number;
  bytes: number;
}

const PROGRESS_EVERY_MS = 250;

// One connection and one set of exporters per worker thread, reused across its shards.
let client: pg.Client | null = null;
let exporters: { key: string; list: Promise<Exporter[]> } | null = null;

async function sourceClient(config: Config): Promise<pg.Client> {
  if (!client) client = await connectSource(config.source, 'worker');
  return client;
}

function exportersFor(config: Config): Promise<Exporter[]> {
  const key = JSON.stringify(config.logExporters);
  if (!exporters || exporters.key !== key) exporters = { key, list: Promise.all(config.logExporters.map(createExporter)) };
  return exporters.list;
}

export function filtersOf(config: Config): Filters {
  return { logLevelFilter: config.logLevelFilter, namespace: config.namespace, tenantId: config.tenantId };
}

/**
 * Exports one shard: read it once, fan every batch out to all exporters, and count it done only
 * when every exporter confirmed. With `delete`, the rows are deleted in the same repeatable-read
 * snapshot they were read in (so rows inserted meanwhile survive) and the shard's checkpoint
 * commits in that same transaction.
 */
export async function exportShard(input: ShardTaskInput): Promise<ShardOutcome> {
  const { config, table, shard, progress } = input;
  const filters = filtersOf(config);
  const db = await sourceClient(config);
  const writers: ShardWriter[] = (await exportersFor(config)).map((e) => e.openShard(shard, table));
  const delayMs = Number(process.env.LOGSHIP_TEST_BATCH_DELAY_MS ?? 0);
  const reportEveryMs = process.env.LOGSHIP_TEST_PROGRESS_EVERY_BATCH === '1' ? 0 : PROGRESS_EVERY_MS;
  let rows = 0;
  let bytes = 0;
  let lastReport = Date.now();
  let inTransaction = false;
  try {
    if (config.delete) {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      inTransaction = true;
    }
    const sql = shardSelect(table, filters, shard.lo, shard.hi, config.source.ordered, config.source.stream);
    const read = config.source.stream === 'copy' ? readWithCopy : readWithCursor;
    for await (const batch of read(db, sql, config.source.fetchSize)) {
      if (writers.length === 1) await writers[0]!.write(batch);
      else await Promise.all(writers.map((w) => w.write(batch)));
      rows += batch.count;
      bytes += batch.bytes;
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const now = Date.now();
      if (now - lastReport >= reportEveryMs) {
        progress.postMessage({ shard: shard.index, rows, bytes } satisfies ProgressMessage);
        lastReport = now;
      }
    }
    const results = await Promise.all(writers.map((w) => w.finish()));
    const outcome: ShardOutcome = { rows, deletedRows: null, exporters: results };
    if (config.delete && config.state.type === 'postgres') {
      const deleted = await db.query(shardDelete(table, filters, shard.lo, shard.hi));
      outcome.deletedRows = deleted.rowCount ?? 0;
      await db.query(shardDoneSql(config.state.table), [config.offsetKey, input.runId, shard.index, JSON.stringify(outcome)]);
      await db.query('COMMIT');
      inTransaction = false;
    }
    progress.postMessage({ shard: shard.index, rows, bytes } satisfies ProgressMessage);
    return outcome;
  } catch (err) {
    await Promise.all(writers.map((w) => w.abort().catch(() => {})));
    if (inTransaction) await db.query('ROLLBACK').catch(() => {});
    // A broken connection must not be reused by this thread's next shard.
    if (client) {
      const broken = client;
      client = null;
      await broken.end().catch(() => {});
    }
    if ((err as { code?: string }).code === INVALID_ENCODING) {
      throw (await findNonUtf8Row(config.source.url, table, filters, shard.lo, shard.hi).catch(() => null)) ?? err;
    }
    throw err;
  } finally {
    progress.close();
  }
}
