/**
 * source.maxSnapshotAge: no shard read holds its REPEATABLE READ snapshot longer than the limit.
 * An open snapshot keeps VACUUM from removing any row that died after it, in every table of the
 * database: Kestra's busy queue tables share the database with its logs.
 *
 * An ordered read (timestamp, key) renews its snapshot between batches: it ends the statement
 * and the transaction, begins a new one and reads on from the row after the last one delivered.
 * The shard's range is then covered by pieces, each read in its own snapshot, which the late-row
 * check needs to know (ShardOutcome.renewals): piece k runs from the first row its read returned
 * to the first row the next read returned. That is exact: a row between the last row delivered
 * and the next read's first row that the next read did not see committed after the next
 * snapshot, so after the earlier one too, and the earlier piece's check finds it late.
 *
 * An unordered read cannot resume after a row. A shard expected to outlive the limit is read
 * ordered from the start (ShardTaskInput.orderedForAge), and an unordered read that passes the
 * limit anyway is abandoned (its parts taken back, as any failed attempt's) and read again, ordered.
 */
import type pg from 'pg';
import type { Config } from './config.js';
import { microsToTs, type Bound } from '../core/keyset.js';
import type { ShardSpec } from '../core/keyset.js';
import type { BadRow, BadRowPolicy } from '../source/bad_rows.js';
import type { RowBatch } from '../source/row_batch.js';
import type { ReadRange, ShardOutcome } from '../state/types.js';

export const DEFAULT_MAX_SNAPSHOT_AGE_MS = 10 * 60_000;

/** What a read measures its snapshot's age with: Date.now, or (in-process calls only) a test's clock. */
export type SnapshotClock = () => number | Promise<number>;

/**
 * The age limit shard `shard`'s read keeps to, ms; 0 = none. Exempt: `delete` (the shard's range
 * is deleted, and the shard recorded done, in the read's own snapshot, which must therefore last
 * the whole shard) and late catch-ups (they read only the rows committed late into a range).
 */
export function snapshotAgeLimitMs(config: Config, shard: Pick<ShardSpec, 'late'>): number {
  if (config.delete || shard.late) return 0;
  return config.source.maxSnapshotAgeMs ?? DEFAULT_MAX_SNAPSHOT_AGE_MS;
}

/** The warning a run gives once when the config sets a limit that `delete` keeps from applying. */
export function snapshotAgeWarning(config: Config): string | null {
  if (!config.delete || !config.source.maxSnapshotAgeSet || (config.source.maxSnapshotAgeMs ?? 0) === 0) return null;
  return 'source.maxSnapshotAge does not apply with delete: true: each shard is deleted and recorded done in the snapshot it was read in, so that snapshot lasts the whole shard; lower rowsPerShard to shorten it';
}

/**
 * Whether a shard whose read is expected to take `expectedMs` (from the shards done so far; null
 * before any) should be read ordered from the start: an unordered read that passes the limit is
 * read again, so one that may come near it is cheaper ordered. Half the limit leaves room for a
 * wrong estimate.
 */
export function orderedForAge(config: Config, shard: ShardSpec, expectedMs: number | null): boolean {
  const limit = snapshotAgeLimitMs(config, shard);
  return limit > 0 && expectedMs !== null && expectedMs > limit / 2;
}

/** An unordered read passed the age limit: the shard is read again, ordered (see exportShard). */
export class UnorderedReadTooOld extends Error {
  override readonly name = 'UnorderedReadTooOld';
  /** How long the abandoned read held its snapshot, for the report. */
  heldMs = 0;
}

/**
 * The read's transaction: REPEATABLE READ, its snapshot, and how long each snapshot was held. The
 * first statement after BEGIN fixes the snapshot, so it is taken right away.
 */
export class ReadTransaction {
  snapshot = '';
  open = false;
  /** The longest any of this read's snapshots was held, ms. */
  heldMs = 0;
  private takenAt = 0;

  constructor(
    private readonly db: pg.Client,
    private readonly readOnly: boolean,
    private readonly clock: SnapshotClock,
  ) {}

  async begin(): Promise<string> {
    await this.db.query(`BEGIN ISOLATION LEVEL REPEATABLE READ${this.readOnly ? ' READ ONLY' : ''}`);
    this.open = true;
    this.takenAt = await this.clock();
    this.snapshot = (await this.db.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s;
    return this.snapshot;
  }

  async age(): Promise<number> {
    return (await this.clock()) - this.takenAt;
  }

  /** Ends the transaction, and with it the snapshot that holds back VACUUM. */
  async end(command: 'COMMIT' | 'ROLLBACK' = 'COMMIT'): Promise<void> {
    await this.db.query(command);
    this.open = false;
    this.heldMs = Math.max(this.heldMs, await this.age());
  }

  /** A new snapshot: the read so far wrote nothing, and its statement was stopped (cancelled, maybe). */
  async renew(): Promise<string> {
    await this.end('ROLLBACK');
    return this.begin();
  }
}

/** A row's (timestamp, key) position: a Bound whose key is the row's. */
export type RowPosition = Bound & { key: string };

/** The position of row i of a batch. */
export function rowBound(batch: RowBatch, i: number): RowPosition {
  return { ts: microsToTs(batch.tsMicros[i]!), key: batch.key(i) };
}

/**
 * A bad-row policy that, across a renewal, does not take the same bad row twice. A reader parses
 * ahead of the batch it hands out, so bad rows after the last row delivered may already be
 * rejected (dead-lettered) when the read stops; the renewed read, which starts after that row,
 * meets them again. Those, and only those, are skipped: a row committed in between is new.
 */
export class RejectOnce implements BadRowPolicy {
  /** Rows rejected and not yet known to lie at or before the last row delivered. */
  private ahead: BadRow[] = [];
  /** Rows the renewed read skips when it meets them. */
  private seen: BadRow[] = [];

  constructor(private readonly policy: BadRowPolicy) {}

  get maxRowBytes(): number {
    return this.policy.maxRowBytes;
  }

  reject(row: BadRow): void {
    const i = this.seen.findIndex((s) => s.tsMicros === row.tsMicros && s.key !== null && row.key !== null && s.key.equals(row.key));
    if (i >= 0) {
      this.seen.splice(i, 1);
      return;
    }
    this.policy.reject(row);
    // A NULL key sorts after every key and fails the renewed read's row comparison: never met again.
    if (row.key !== null) this.ahead.push(row);
  }

  /** Row `last` of `batch` is delivered: rejections at or before it lie behind every later read. */
  delivered(batch: RowBatch, last: number): void {
    if (this.ahead.length === 0) return;
    const ts = batch.tsMicros[last]!;
    const key = batch.keyBytes.subarray(last === 0 ? 0 : batch.keyEnds[last - 1]!, batch.keyEnds[last]!);
    // Keys compare byte-wise, as the read's COLLATE "C" orders them.
    this.ahead = this.ahead.filter((r) => r.tsMicros > ts || (r.tsMicros === ts && Buffer.compare(r.key!, key) > 0));
  }

  /** The read renews after the last row delivered: what was rejected beyond it comes again. */
  renewed(): void {
    this.seen = [...this.seen, ...this.ahead];
    this.ahead = [];
  }
}

/**
 * The ranges a finished shard covers, each with the snapshot it was read in: one for a read that
 * kept its snapshot, one per snapshot for one that renewed it (ids `${shard.id}`, then
 * `${shard.id}-r1`, `-r2`…, so their catch-ups `${id}-late${n}` stay distinct). When an exporter
 * skipped a prefix an earlier attempt acknowledged, the outcome's `reads` (that prefix's
 * snapshots, then this attempt's) take the place of the snapshot and its renewals.
 */
export function shardReadRanges(shard: Pick<ShardSpec, 'id' | 'lo' | 'hi'>, outcome: Pick<ShardOutcome, 'snapshot' | 'renewals' | 'reads'>): ReadRange[] {
  if (!outcome.snapshot) return [];
  const starts = outcome.reads ?? [{ lo: shard.lo, snapshot: outcome.snapshot }, ...(outcome.renewals ?? [])];
  return starts.map((s, i) => ({
    id: i === 0 ? shard.id : `${shard.id}-r${i}`,
    lo: s.lo,
    hi: starts[i + 1]?.lo ?? shard.hi,
    snapshot: s.snapshot,
    late: 0,
  }));
}
