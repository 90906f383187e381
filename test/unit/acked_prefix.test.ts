import { describe, expect, it } from 'vitest';
import type { Bound, ShardSpec } from '../../src/core/keyset.js';
import { ackPieces, resumableAcks, shardPieces, skippedRanges, withLeftOut } from '../../src/shard/acked_prefix.js';
import type { InShardAck } from '../../src/sinks/delivery/types.js';
import { formatSnapshot, oldestOf, parseSnapshot, type SnapshotPiece } from '../../src/source/snapshots.js';

/** Row `n` of a shard, one a second. */
const at = (n: number): Bound & { key: string } => ({ ts: `2024-05-01T00:00:${String(n).padStart(2, '0')}.000000Z`, key: `k${String(n).padStart(2, '0')}` });
const shard: ShardSpec = { index: 0, id: 's0', lo: { ts: '2024-05-01T00:00:00.000000Z', key: null }, hi: { ts: '2024-05-01T00:01:00.000000Z', key: null }, estimatedRows: 60 };
const S1 = '100:104:101,102';
const S1r = '110:112:';
const S2 = '120:125:121';
const S2r = '130:131:';
const S3 = '140:140:';
const S3r = '150:151:';

function ack(through: number, reads?: SnapshotPiece[]): InShardAck {
  return { ts: at(through).ts, key: at(through).key, delivered: through + 1, deadLettered: 0, deadLetterBytes: 0, ...(reads ? { reads } : {}) };
}

const oldest = (...s: string[]) => formatSnapshot(oldestOf(s.map(parseSnapshot)));

describe('the snapshots of an acknowledged prefix', () => {
  it('no exporter skipped a prefix with known snapshots: the attempt\'s own snapshot and renewals say it all', () => {
    expect(shardPieces([undefined, undefined], [{ lo: shard.lo, snapshot: S2 }])).toBeNull();
  });

  it('the skipped prefix keeps the first attempt\'s snapshot up to the acknowledged row; the retry\'s from that row on', () => {
    const resume = ack(20, [{ lo: shard.lo, snapshot: S1 }]);
    expect(shardPieces([resume], [{ lo: shard.lo, snapshot: S2 }])).toEqual([
      { lo: shard.lo, snapshot: S1 },
      { lo: { ts: at(20).ts, key: at(20).key }, snapshot: S2 },
    ]);
  });

  it('renewals on both sides: the prefix\'s pieces before the ack, the retry\'s piece covering the ack row from it, the retry\'s later renewals after', () => {
    const resume = ack(20, [{ lo: shard.lo, snapshot: S1 }, { lo: at(10), snapshot: S1r }]);
    // The retry renewed while still inside the skipped prefix (row 15), and again past it (row 40).
    const current = [{ lo: shard.lo, snapshot: S2 }, { lo: at(15), snapshot: S2r }, { lo: at(40), snapshot: S3 }];
    expect(shardPieces([resume], current)).toEqual([
      { lo: shard.lo, snapshot: S1 },
      { lo: at(10), snapshot: S1r },
      { lo: { ts: at(20).ts, key: at(20).key }, snapshot: S2r },
      { lo: at(40), snapshot: S3 },
    ]);
  });

  it('exporters that skipped different prefixes in different snapshots: each piece gets the oldest snapshot any exporter delivered it in', () => {
    // A acknowledged up to row 10 in attempt 1 (S1), B up to row 30 in attempt 2 (S2), C (a file
    // exporter, or one that acknowledged nothing) rewrites the shard; this attempt reads in S3.
    const a = ack(10, [{ lo: shard.lo, snapshot: S1 }]);
    const b = ack(30, [{ lo: shard.lo, snapshot: S2 }]);
    expect(shardPieces([a, b, undefined], [{ lo: shard.lo, snapshot: S3 }])).toEqual([
      { lo: shard.lo, snapshot: oldest(S1, S2, S3) },
      { lo: { ts: at(10).ts, key: at(10).key }, snapshot: oldest(S2, S3) },
      { lo: { ts: at(30).ts, key: at(30).key }, snapshot: S3 },
    ]);
    // The oldest of them saw no more than any: a row committed after S1 or S2 is late for it.
    expect(parseSnapshot(oldest(S1, S2, S3))).toEqual({ xmin: 100n, xmax: 104n, xip: [101n, 102n, 121n] });
  });

  it('an ack names the pieces of its own prefix only (the read runs ahead of the acknowledgements), and chains over attempts', () => {
    const own = [{ lo: shard.lo, snapshot: S1 }, { lo: at(25), snapshot: S1r }];
    expect(ackPieces(undefined, own, at(20))).toEqual([{ lo: shard.lo, snapshot: S1 }]);
    // Attempt 2 resumed after row 20 and acknowledged up to row 40: the first attempt's prefix, then its own.
    const second = ackPieces(ack(20, [{ lo: shard.lo, snapshot: S1 }]), [{ lo: shard.lo, snapshot: S2 }], at(40));
    expect(second).toEqual([{ lo: shard.lo, snapshot: S1 }, { lo: { ts: at(20).ts, key: at(20).key }, snapshot: S2 }]);
    // Attempt 3 resumes after row 40 in S3: rows up to 20 in S1, 20-40 in S2, the rest in S3.
    expect(shardPieces([ack(40, second)], [{ lo: shard.lo, snapshot: S3 }])).toEqual([...second, { lo: { ts: at(40).ts, key: at(40).key }, snapshot: S3 }]);
  });

  it('an ack stored by an older logship (no snapshots) resumes with the run\'s snapshot, taken before any attempt; without one it is resent, with late rows off it is used as it is', () => {
    const legacy = { dd: ack(20) };
    expect(resumableAcks(legacy, shard, S1, true, () => { throw new Error('not resent'); })).toEqual({ dd: ack(20, [{ lo: shard.lo, snapshot: S1 }]) });
    const resent: string[] = [];
    expect(resumableAcks(legacy, shard, undefined, true, (id) => resent.push(id))).toEqual({});
    expect(resent).toEqual(['dd']);
    expect(resumableAcks(legacy, shard, undefined, false, () => { throw new Error('not resent'); })).toBe(legacy);
    // A scan catch-up's prefix was read after its `since`; a keyed one reads fixed rows.
    const scan: ShardSpec = { ...shard, late: { of: 's0', n: 1, since: S1 } };
    expect(resumableAcks(legacy, scan, undefined, true, () => {})).toEqual({ dd: ack(20, [{ lo: shard.lo, snapshot: S1 }]) });
    const keyed: ShardSpec = { ...shard, late: { of: 's0', n: 1, since: S1, keys: ['k'], until: S2 } };
    expect(resumableAcks(legacy, keyed, undefined, true, () => { throw new Error('not resent'); })).toBe(legacy);
  });

  it('the ranges an exporter skips are known before the read, each with its ledger snapshot; the read leaves their unseen rows out, so its pieces take those snapshots there', () => {
    // A skipped up to row 10 (read in S1), B up to row 30 (S2); C rewrites the shard; this attempt starts in S3.
    const a = ack(10, [{ lo: shard.lo, snapshot: S1 }]);
    const b = ack(30, [{ lo: shard.lo, snapshot: S2 }]);
    const skipped = skippedRanges([a, b, undefined], shard, S3);
    const r10 = { ts: at(10).ts, key: at(10).key };
    const r30 = { ts: at(30).ts, key: at(30).key };
    expect(skipped).toEqual([
      { lo: shard.lo, hi: r10, snapshot: oldest(S1, S2, S3) },
      { lo: r10, hi: r30, snapshot: oldest(S2, S3) },
    ]);
    expect(skippedRanges([undefined, undefined], shard, S3)).toEqual([]);
    // The read renews inside B's prefix (row 15) and past it (row 40): the left-out ranges keep
    // their snapshots, this attempt's own apply from row 30 on.
    const current = [{ lo: shard.lo, snapshot: S3 }, { lo: at(15), snapshot: S3r }, { lo: at(40), snapshot: S2r }];
    const own = withLeftOut(current, skipped, shard.hi);
    expect(own).toEqual([
      { lo: shard.lo, snapshot: oldest(S1, S2, S3) },
      { lo: r10, snapshot: oldest(S2, S3) },
      { lo: r30, snapshot: S3r },
      { lo: at(40), snapshot: S2r },
    ]);
    expect(withLeftOut(current, [], shard.hi)).toBe(current);
    // C acknowledges up to row 35 in this attempt: its prefix is recorded as it was read, rows up
    // to 30 with the snapshots their unseen rows were left out by.
    expect(ackPieces(undefined, own, at(35))).toEqual(own.slice(0, 3));
    // The ledger: the skipped ranges with their snapshots, the rest as read.
    expect(shardPieces([a, b, undefined], own)).toEqual([
      { lo: shard.lo, snapshot: oldest(S1, S2, S3) },
      { lo: r10, snapshot: oldest(S2, S3) },
      { lo: r30, snapshot: S3r },
      { lo: at(40), snapshot: S2r },
    ]);
  });
});
