import type pg from 'pg';
import { ConfigError } from '../core/errors.js';
import { TS_TEXT, type Bound } from '../core/keyset.js';

export interface ExportWindow {
  start: Bound;
  end: Bound;
  /** True when start came from lookbackPeriod (no offset stored yet). */
  fromLookback: boolean;
}

/** Timestamps before year 1 print without their era (to_char 'YYYY' of 1 BC is 0001), so a BC bound
 *  would read back as AD: windows may not reach before it. */
const YEAR_ONE = `'0001-01-01 00:00:00+00'::timestamptz`;

interface WindowEdges { end_ts: string; lookback_ts: string; end_bc: boolean; lookback_bc: boolean }

/**
 * [start, end) in (timestamp, key) order. `end` is the database's clock minus the safety lag, so
 * rows still being written (whose timestamps trail commit time) land in the next run, not nowhere.
 */
export async function computeWindow(client: pg.Client, offset: Bound | null, lookbackPeriod: string, safetyLag: string): Promise<ExportWindow | null> {
  const { end_ts, lookback_ts } = await windowEdges(client, lookbackPeriod, safetyLag);
  const start: Bound = offset ?? { ts: lookback_ts, key: null };
  const end: Bound = { ts: end_ts, key: null };
  if (start.ts >= end.ts) return null;
  return { start, end, fromLookback: offset === null };
}

/** Why computeWindow found nothing to do, in one sentence for `plan` and the run log. */
export async function emptyWindowReason(client: pg.Client, offset: Bound | null, lookbackPeriod: string, safetyLag: string): Promise<string> {
  const { end_ts, lookback_ts } = await windowEdges(client, lookbackPeriod, safetyLag);
  if (offset) return `the stored offset ${offset.ts} is not before now() - safetyLag ${safetyLag} (${end_ts}): nothing has aged past the safety lag since the last run`;
  return `no offset is stored and lookbackPeriod ${lookbackPeriod} does not reach past safetyLag ${safetyLag} (now() - lookbackPeriod = ${lookback_ts}, now() - safetyLag = ${end_ts}): make lookbackPeriod longer than safetyLag`;
}

async function windowEdges(client: pg.Client, lookbackPeriod: string, safetyLag: string): Promise<WindowEdges> {
  const edge = (p: string) => `now() - ${p}::interval`;
  const sql = `SELECT ${TS_TEXT(edge('$1'))} AS end_ts, ${TS_TEXT(edge('$2'))} AS lookback_ts,
                      ${edge('$1')} < ${YEAR_ONE} AS end_bc, ${edge('$2')} < ${YEAR_ONE} AS lookback_bc`;
  let row: WindowEdges;
  try {
    row = (await client.query<WindowEdges>(sql, [safetyLag, lookbackPeriod])).rows[0]!;
  } catch (err) {
    // 22xxx: a duration past PostgreSQL's interval or timestamp range. Find which option it was.
    if (!String((err as { code?: string }).code ?? '').startsWith('22')) throw err;
    const lagFails = await client.query(`SELECT ${edge('$1')}`, [safetyLag]).then(() => false, () => true);
    const [option, value] = lagFails ? ['safetyLag', safetyLag] : ['lookbackPeriod', lookbackPeriod];
    throw new ConfigError(option, `${value} reaches outside PostgreSQL's timestamp range (now() - ${option} must be after year 1)`);
  }
  if (row.end_bc) throw new ConfigError('safetyLag', `${safetyLag} reaches before year 1 (now() - safetyLag must be after year 1)`);
  if (row.lookback_bc) throw new ConfigError('lookbackPeriod', `${lookbackPeriod} reaches before year 1 (windows start after year 1; BC timestamps would lose their era)`);
  return row;
}
