/**
 * Late rows are found by transaction visibility, not by timestamps: a shard is read in a
 * REPEATABLE READ transaction whose snapshot (`pg_current_snapshot()`) is recorded, and a later
 * read selects the shard's rows that snapshot could not see. A row's `xmin` is a 32-bit xid, so
 * "could not see" is expressed on 32-bit values: the xids assigned between the old snapshot's
 * xmax and the current one's (a modular interval, so an xid wraparound in between is handled),
 * plus the xids the old snapshot listed as in progress.
 */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: bigint[];
}

const WRAP = 1n << 32n;
/** Beyond this many xids between the two snapshots, 32-bit xmin values become ambiguous. */
export const MAX_XID_DISTANCE = 1n << 31n;

export function parseSnapshot(text: string): Snapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text);
  if (!m) throw new Error(`not a pg_snapshot: ${JSON.stringify(text)}`);
  return { xmin: BigInt(m[1]!), xmax: BigInt(m[2]!), xip: m[3] ? m[3].split(',').map(BigInt) : [] };
}

/** Whether rows older than `since` can still be told apart by their 32-bit xmin from `now`. */
export function comparable(since: Snapshot, now: Snapshot): boolean {
  return now.xmax >= since.xmax && now.xmax - since.xmin < MAX_XID_DISTANCE;
}

/** A row's 32-bit xmin as int8 (xid has no ordering operators and no cast to a number). */
export const XMIN8 = 't.xmin::text::int8';

/**
 * SQL condition: the row was committed after `since` was taken (invisible to it), seen from a
 * read whose snapshot is `now`. xmin values 0-2 (invalid, bootstrap, frozen) are always old.
 * `xmin8` is the row's xmin as int8 (an expression, or a column that already holds it).
 */
export function committedAfter(since: Snapshot, now: Snapshot, xmin8 = XMIN8): string {
  const x = xmin8;
  const a = since.xmax % WRAP;
  const b = now.xmax % WRAP;
  const parts: string[] = [];
  if (a < b) parts.push(`(${x} >= ${a} AND ${x} < ${b})`);
  else if (a > b) parts.push(`(${x} >= ${a} OR ${x} < ${b})`);
  const inProgress = since.xip.map((v) => String(v % WRAP));
  if (inProgress.length > 0) parts.push(`${x} IN (${inProgress.join(', ')})`);
  if (parts.length === 0) return 'false';
  return `(${x} >= 3 AND (${parts.join(' OR ')}))`;
}
