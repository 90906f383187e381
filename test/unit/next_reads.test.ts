import { describe, expect, it } from 'vitest';
import type { Bound } from '../../src/core/keyset.js';
import { nextReads, type Ledger } from '../../src/run/late_rows.js';
import type { Config } from '../../src/shard/config.js';
import type { ReadRange, RunManifest, ShardOutcome } from '../../src/state/types.js';

const at = (second: number): Bound => ({ ts: `2026-12-07T10:00:${String(second).padStart(2, '0')}.000000Z`, key: null });
const config = { offsetKey: 'logs' } as Config;
const outcome = (snapshot: string): ShardOutcome => ({ rows: 0, deletedRows: null, exporters: [], snapshot });
const horizonStart = '2026-12-07T09:00:00.000000Z';

/** A catch-up of range `of`, planned when it ran from `lo` to `hi`. */
function catchUp(of: ReadRange, hi: Bound): RunManifest {
  return {
    runId: 'late', createdAt: '', kind: 'late', window: { start: hi, end: hi }, totalRows: 0,
    shards: [{ index: 0, id: `${of.id}-late1`, lo: of.lo, hi, estimatedRows: 0, late: { of: of.id, n: 1, since: of.snapshot } }],
  };
}

describe('nextReads after a late-row catch-up', () => {
  it('moves the range the catch-up read to the catch-up\'s snapshot', () => {
    const range: ReadRange = { id: 'a', lo: at(0), hi: at(10), snapshot: '100:100:', late: 0 };
    const reads = nextReads(config, catchUp(range, at(10)), new Map([[0, outcome('200:200:')]]), { reads: [range], horizonStart });
    expect(reads).toEqual([{ id: 'a', lo: at(0), hi: at(10), snapshot: '200:200:', late: 1 }]);
  });

  it('keeps the part an empty window added to the range after the catch-up was planned in the range\'s own, older snapshot (the catch-up read none of it)', () => {
    // The cycle: the check found `a` late while it ended at 10 s; the cycle's empty window then
    // extended it to 12 s (its rows were unseen by a snapshot older than the catch-up's).
    const planned: ReadRange = { id: 'a', lo: at(0), hi: at(10), snapshot: '100:100:', late: 0 };
    const ledger: Ledger = { reads: [{ ...planned, hi: at(12) }], horizonStart };
    const reads = nextReads(config, catchUp(planned, at(10)), new Map([[0, outcome('200:200:')]]), ledger);
    expect(reads).toEqual([
      { id: 'a', lo: at(0), hi: at(10), snapshot: '200:200:', late: 1 },
      { id: 'a-x1', lo: at(10), hi: at(12), snapshot: '100:100:', late: 0 },
    ]);
  });

  it('leaves a range no catch-up read as it was', () => {
    const a: ReadRange = { id: 'a', lo: at(0), hi: at(10), snapshot: '100:100:', late: 0 };
    const b: ReadRange = { id: 'b', lo: at(10), hi: at(20), snapshot: '150:150:', late: 2 };
    const reads = nextReads(config, catchUp(a, at(10)), new Map([[0, outcome('200:200:')]]), { reads: [a, b], horizonStart });
    expect(reads[1]).toEqual(b);
  });
});
