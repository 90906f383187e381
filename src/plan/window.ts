import type pg from 'pg';
import { TS_TEXT, type Bound } from './keyset.js';

export interface ExportWindow {
  start: Bound;
  end: Bound;
  /** True when start came from lookbackPeriod (no offset stored yet). */
  fromLookback: boolean;
}

/**
 * [start, end) in (timestamp, key) order. `end` is the database's clock minus the safety lag, so
 * rows still being written (whose timestamps trail commit time) land in the next run, not nowhere.
 */
export async function computeWindow(client: pg.Client, offset: Bound | null, lookbackPeriod: string, safetyLag: string): Promise<ExportWindow | null> {
  const r = await client.query<{ end_ts: string; lookback_ts: string }>(
    `SELECT ${TS_TEXT('now() - $1::interval')} AS end_ts, ${TS_TEXT('now() - $2::interval')} AS lookback_ts`,
    [safetyLag, lookbackPeriod],
  );
  const { end_ts, lookback_ts } = r.rows[0]!;
  const start: Bound = offset ?? { ts: lookback_ts, key: null };
  const end: Bound = { ts: end_ts, key: null };
  if (start.ts >= end.ts) return null;
  return { start, end, fromLookback: offset === null };
}
