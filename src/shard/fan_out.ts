import type { ShardSpec } from '../core/keyset.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { acksInShard, createExporter } from '../sinks/registry.js';
import type { Exporter, ExporterShardResult, ShardWriter } from '../sinks/types.js';
import type { RowBatch } from '../source/row_batch.js';
import type { SourceTable } from '../source/table.js';
import type { SnapshotPiece } from '../source/snapshots.js';
import { ackPieces, shardPieces, skippedRanges, type SkippedRange } from './acked_prefix.js';
import type { WorkerSide } from './channel.js';
import type { Config } from './config.js';

// One set of exporters per worker thread, reused across its shards.
let exporters: { key: string; list: Promise<Exporter[]> } | null = null;

function exportersFor(config: Config): Promise<Exporter[]> {
  const key = JSON.stringify(config.logExporters);
  if (!exporters || exporters.key !== key) exporters = { key, list: Promise.all(config.logExporters.map(createExporter)) };
  return exporters.list;
}

export interface FanOutContext {
  /** Where each bounded-duplicates exporter resumes inside this shard (by exporter id). */
  acks?: Record<string, InShardAck>;
  /** Acknowledgements and delivery events go to the main thread through it. */
  channel: WorkerSide;
  /** Distributed mode: the attempt whose parts these are, checked before anything becomes visible. */
  fence?: { attempt: number; check: () => Promise<void> };
  /** This attempt's pieces so far, from the shard's lo (its first snapshot, each renewal, the ranges it left rows out of): acks carry them. */
  pieces: () => SnapshotPiece[];
}

/**
 * A shard's fan-out: every batch goes to every exporter, and the shard is done only when all of
 * them confirmed. The read goes on at the pace of the slowest (each write resolves when its
 * exporter has taken the batch), which is the backpressure from the destinations to PostgreSQL.
 */
export class FanOut {
  private constructor(
    private readonly writers: ShardWriter[],
    /** Where each exporter resumed (by position in config.logExporters): undefined, from the shard's start. */
    private readonly resumes: (InShardAck | undefined)[],
  ) {}

  static async open(config: Config, table: SourceTable, shard: ShardSpec, o: FanOutContext): Promise<FanOut> {
    const list = await exportersFor(config);
    const resumes = list.map((e, i) => (acksInShard(config.logExporters[i]!) ? o.acks?.[e.id] : undefined));
    return new FanOut(list.map((e, i) => {
      const resume = resumes[i];
      return e.openShard(shard, table, {
        resume,
        // The ack names the snapshots its prefix was read in, so a retry that skips the prefix
        // can have it checked for late rows against them (acked_prefix.ts).
        acknowledge: acksInShard(config.logExporters[i]!) ? (ack) => o.channel.acknowledge(e.id, { ...ack, reads: ackPieces(resume, o.pieces(), ack) }) : undefined,
        observe: (event) => o.channel.delivery(e.id, event),
        fence: o.fence,
      });
    }), resumes);
  }

  /** The shard's pieces for the late-row ledger if an exporter skipped an acknowledged prefix; null if none did. */
  pieces(current: SnapshotPiece[]): SnapshotPiece[] | null {
    return shardPieces(this.resumes, current);
  }

  /** The ranges an exporter skips as acknowledged by an earlier attempt, for a read whose first snapshot is `first`. */
  skippedRanges(shard: Pick<ShardSpec, 'lo' | 'hi'>, first: string): SkippedRange[] {
    return skippedRanges(this.resumes, shard, first);
  }

  write(batch: RowBatch): Promise<unknown> {
    return this.writers.length === 1 ? this.writers[0]!.write(batch) : Promise.all(this.writers.map((w) => w.write(batch)));
  }

  /** Each exporter's last parts and requests out, in the order of config.logExporters. */
  finish(): Promise<ExporterShardResult[]> {
    return Promise.all(this.writers.map((w) => w.finish()));
  }

  /** Takes back every part and request of this attempt; fails if one cannot be taken back. */
  async takeBack(): Promise<void> {
    await Promise.all(this.writers.map((w) => w.abort()));
  }

  /** Takes back what it can after `cause` failed the shard (a full disk also takes back finished parts); that failure is what is reported. */
  async abandon(cause: unknown): Promise<void> {
    await Promise.all(this.writers.map((w) => w.abort(cause).catch(() => {})));
  }
}
