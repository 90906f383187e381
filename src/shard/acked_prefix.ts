/**
 * The snapshots of an acknowledged prefix. A bounded-duplicates exporter's retried shard skips
 * the prefix an earlier attempt acknowledged, so the retry's snapshot says nothing about that
 * prefix: a row committed into it after the earlier attempt's snapshot is read by the retry (its
 * snapshot sees it) but never sent. Recorded with the retry's snapshot, the late-row check would
 * take it for read, and the row would be lost. So each ack carries the snapshots its prefix was
 * read in (SnapshotPiece, as #24's renewals), and the finished shard is recorded as the prefix in
 * those snapshots and the rest in the retry's: the check then finds that row late, once.
 */
import { boundEquals, type Bound, type ShardSpec } from '../core/keyset.js';
import type { InShardAck } from '../sinks/delivery/types.js';
import { rangeConditions } from '../source/query.js';
import { committedAfter, formatSnapshot, oldestOf, parseSnapshot, type SnapshotPiece } from '../source/snapshots.js';
import type { SourceTable } from '../source/table.js';
import { compareBounds } from './late_check.js';

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
 * exporter misses a row. An exporter that had a row already (it did not skip that far) is sent it
 * again by the catch-up: a late row in a skipped prefix is the one case of a late row that can
 * reach an exporter twice.
 */
export function shardPieces(resumes: (InShardAck | undefined)[], current: SnapshotPiece[]): SnapshotPiece[] | null {
  if (!resumes.some((r) => r?.reads)) return null;
  const each = resumes.map((r) => exporterPieces(r, current));
  const starts = each.flat().map((p) => p.lo).sort(compareBounds).filter((b, i, all) => i === 0 || !boundEquals(b, all[i - 1]!));
  const merged: SnapshotPiece[] = [];
  for (const lo of starts) {
    const snapshots = [...new Set(each.map((pieces) => pieceAt(pieces, lo).snapshot))];
    const snapshot = snapshots.length === 1 ? snapshots[0]! : formatSnapshot(oldestOf(snapshots.map(parseSnapshot)));
    if (merged.at(-1)?.snapshot !== snapshot) merged.push({ lo, snapshot });
  }
  return merged;
}

/**
 * With `delete`, the shard's range is deleted in the final attempt's snapshot, which sees the rows
 * committed into a skipped prefix after that prefix's snapshot: never sent, they would be deleted
 * unexported. These conditions keep them for the late-row catch-up, which exports and deletes them.
 */
export function keepSkippedLateRows(t: SourceTable, shard: Pick<ShardSpec, 'hi'>, pieces: SnapshotPiece[], snapshot: string): string[] {
  const now = parseSnapshot(snapshot);
  return pieces.flatMap((p, i) => p.snapshot === snapshot ? [] : [
    `NOT (${[...rangeConditions(t, p.lo, pieces[i + 1]?.lo ?? shard.hi), committedAfter(parseSnapshot(p.snapshot), now)].join(' AND ')})`,
  ]);
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
