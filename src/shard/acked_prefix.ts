/**
 * The snapshots of an acknowledged prefix. A bounded-duplicates exporter's retried shard skips
 * the prefix an earlier attempt acknowledged, so the retry's snapshot says nothing about that
 * prefix: a row committed into it after the earlier attempt's snapshot is read by the retry (its
 * snapshot sees it) but never sent. Recorded with the retry's snapshot, the late-row check would
 * take it for read, and the row would be lost. So each ack carries the snapshots its prefix was
 * read in (SnapshotPiece, as #24's renewals), and the finished shard is recorded as the prefix in
 * those snapshots and the rest in the retry's: the check then finds that row late, once.
 *
 * The exporters that do not skip the prefix (a file exporter beside, or one whose acknowledged
 * prefix is shorter) read it in the retry, whose snapshot sees that row: sent to them now and by
 * the catch-up, they would have it twice. So the retry leaves out of its read, for every exporter,
 * the rows of a skipped range that the range's recorded snapshot did not see (leaveOutSql): every
 * exporter then has exactly the rows that snapshot saw, and the catch-up sends the rest once to all.
 */
import type pg from 'pg';
import { type Bound, type ShardSpec } from '../core/keyset.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { rangeConditions } from '../source/query.js';
import { committedAfter, formatSnapshot, oldestOf, parseSnapshot, type SnapshotPiece } from '../source/snapshots.js';
import type { SourceTable } from '../source/table.js';
import type { Config } from './config.js';
import { compareBounds, distinctBounds, horizonStart } from './late_check.js';

/** The ack's position: every row up to and including it was delivered or dead-lettered. */
function ackedThrough(ack: Pick<InShardAck, 'ts' | 'key'>): Bound {
  return { ts: ack.ts, key: ack.key };
}

/** The piece of `pieces` that covers position `at`: the last one starting at or before it. */
function pieceAt(pieces: SnapshotPiece[], at: Bound): SnapshotPiece {
  let found = pieces[0]!;
  for (const p of pieces) if (compareBounds(p.lo, at) <= 0) found = p;
  return found;
}

/**
 * What one exporter delivered the shard in: `before` up to (not including) `at`, then `after`
 * from `at` on. Ranges are [lo, hi): the row at `at` itself, delivered by the earlier attempt,
 * is the later piece's, which sees it too; a row between `at` and the later read's next row that
 * the later snapshot did not see is late for it, so for the earlier one too.
 */
function spliced(before: SnapshotPiece[], at: Bound, after: SnapshotPiece[]): SnapshotPiece[] {
  return [
    ...before.filter((p) => compareBounds(p.lo, at) < 0),
    { lo: at, snapshot: pieceAt(after, at).snapshot },
    ...after.filter((p) => compareBounds(p.lo, at) > 0),
  ];
}

/**
 * An exporter's pieces of the shard: this attempt's own (`current`, from the shard's lo) when it
 * resumed from nothing, else the resumed prefix's snapshots up to its end and this attempt's after.
 */
export function exporterPieces(resume: InShardAck | undefined, current: SnapshotPiece[]): SnapshotPiece[] {
  return resume?.reads ? spliced(resume.reads, ackedThrough(resume), current) : current;
}

/** The pieces an ack at `ack` carries: those of the prefix it acknowledges (pieces beyond it are the read's lead). */
export function ackPieces(resume: InShardAck | undefined, current: SnapshotPiece[], ack: Pick<InShardAck, 'ts' | 'key'>): SnapshotPiece[] {
  const through = ackedThrough(ack);
  return exporterPieces(resume, current).filter((p) => compareBounds(p.lo, through) <= 0);
}

/**
 * The shard's pieces for the late-row ledger when some exporter resumed after an acknowledged
 * prefix (null when none did: this attempt's snapshot and renewals say it all). Each exporter
 * delivered the shard in its own pieces (exporterPieces); where they differ, a piece gets the
 * oldest of their snapshots (oldestOf: a row committed after any of them is late for it), so no
 * exporter misses a row. The exporters that read a skipped range in this attempt had the rows
 * that oldest snapshot did not see left out (rangesToLeaveOut), and record it in that snapshot
 * (withLeftOut), so the catch-up sends those rows to each exporter once. Only an exporter whose
 * ack names a newer snapshot for a range than what it has (an older logship's ack, resumed with
 * the run's snapshot) can get some twice.
 */
export function shardPieces(resumes: (InShardAck | undefined)[], current: SnapshotPiece[]): SnapshotPiece[] | null {
  if (!resumes.some((r) => r?.reads)) return null;
  const each = resumes.map((r) => exporterPieces(r, current));
  const starts = distinctBounds(each.flat().map((p) => p.lo));
  const merged: SnapshotPiece[] = [];
  for (const lo of starts) {
    const snapshots = [...new Set(each.map((pieces) => pieceAt(pieces, lo).snapshot))];
    const snapshot = snapshots.length === 1 ? snapshots[0]! : formatSnapshot(oldestOf(snapshots.map(parseSnapshot)));
    if (merged.at(-1)?.snapshot !== snapshot) merged.push({ lo, snapshot });
  }
  return merged;
}

/** A range of the shard, [lo, hi), that some exporter skips as acknowledged, with the snapshot the ledger records it in. */
export interface SkippedRange {
  lo: Bound;
  hi: Bound;
  snapshot: string;
}

/**
 * The ranges of the shard an exporter skips as acknowledged by an earlier attempt, each with its
 * ledger snapshot (shardPieces's: the oldest where several skipped it). Known before the read:
 * the acks name them, and this attempt's snapshots (`first`, then renewals: all newer than an
 * earlier attempt's) change none of those snapshots.
 */
export function skippedRanges(resumes: (InShardAck | undefined)[], shard: Pick<ShardSpec, 'lo' | 'hi'>, first: string): SkippedRange[] {
  const pieces = shardPieces(resumes, [{ lo: shard.lo, snapshot: first }]) ?? [];
  return pieces.flatMap((p, i) => (p.snapshot === first ? [] : [{ lo: p.lo, hi: pieces[i + 1]?.lo ?? shard.hi, snapshot: p.snapshot }]));
}

/**
 * The skipped ranges whose unseen rows this attempt leaves out of its read, for every exporter:
 * only where the late-row catch-up will send them, so late rows must be on and the range must
 * end inside the horizon (by the database clock now, a later start than the run's ledger uses, so
 * the ledger keeps the range). Elsewhere nothing is left out, as before: the exporters reading the
 * range have those rows, the one that skipped it lacks them (a late row the catch-up does not cover).
 */
export async function rangesToLeaveOut(db: pg.Client, config: Config, skipped: SkippedRange[]): Promise<SkippedRange[]> {
  if (skipped.length === 0) return [];
  const start = await horizonStart(db, config);
  return start === null ? [] : skipped.filter((r) => r.hi.ts > start);
}

/**
 * This attempt's pieces as its exporters delivered them: `current` (its snapshot and renewals),
 * but the ranges it left out rows of in their own snapshots, since a read in `current` without
 * the rows those did not see has exactly the rows they saw. Acks and the ledger record these.
 */
export function withLeftOut(current: SnapshotPiece[], leftOut: SkippedRange[], shardHi: Bound): SnapshotPiece[] {
  if (leftOut.length === 0) return current;
  const inside = (b: Bound) => leftOut.find((r) => compareBounds(r.lo, b) <= 0 && compareBounds(b, r.hi) < 0);
  const starts = distinctBounds([...current.map((p) => p.lo), ...leftOut.flatMap((r) => [r.lo, r.hi])].filter((b) => compareBounds(b, shardHi) < 0));
  const pieces: SnapshotPiece[] = [];
  for (const lo of starts) {
    const snapshot = inside(lo)?.snapshot ?? pieceAt(current, lo).snapshot;
    if (pieces.at(-1)?.snapshot !== snapshot) pieces.push({ lo, snapshot });
  }
  return pieces;
}

/**
 * SQL conditions that leave out the rows of each range its snapshot did not see (committed after
 * it), seen from a read in snapshot `now`: the late-row catch-up's own test (committedAfter). Built
 * for each statement of the read (a renewed one reads in a newer snapshot) and for the delete.
 */
export function leaveOutSql(t: SourceTable, leftOut: SkippedRange[], now: string): string[] {
  const seenFrom = parseSnapshot(now);
  return leftOut.map((r) => `NOT (${[...rangeConditions(t, r.lo, r.hi), committedAfter(parseSnapshot(r.snapshot), seenFrom)].join(' AND ')})`);
}

/** Logged when an ack of an older logship cannot be resumed from safely. */
export const PREFIX_RESENT = 'an in-shard acknowledgement stored by an older logship, in a run planned with late rows off, names no snapshot: this exporter resends the shard from its start, so that late rows into that prefix cannot be lost';

/**
 * Acks as a shard attempt can resume from. An ack stored by an older logship has no snapshots:
 * its prefix was read after `runSnapshot` was taken (the run's, before planning; a catch-up's
 * `since`), so the prefix is recorded with that older snapshot: the check then re-sends the rows
 * committed into it since, at worst some the prefix already delivered (duplicates, never a loss).
 * Without one (late rows were off when the run was planned) and with late rows on now, the
 * exporter resends the prefix from the shard's start instead (`resent` names it); with late rows
 * off there is no ledger to keep right, and the ack is used as it is.
 */
export function resumableAcks(
  acks: Record<string, InShardAck> | undefined, shard: ShardSpec, runSnapshot: string | undefined, lateRowsOn: boolean, resent: (exporterId: string) => void,
): Record<string, InShardAck> | undefined {
  // A keyed catch-up reads a fixed set of rows, recorded with the check's snapshot whatever it skipped.
  if (!acks || !lateRowsOn || shard.late?.keys) return acks;
  const older = shard.late ? shard.late.since : runSnapshot;
  const out: Record<string, InShardAck> = {};
  for (const [id, ack] of Object.entries(acks)) {
    if (ack.reads) out[id] = ack;
    else if (older) out[id] = { ...ack, reads: [{ lo: shard.lo, snapshot: older }] };
    else resent(id);
  }
  return out;
}
