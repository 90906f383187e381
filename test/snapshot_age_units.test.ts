import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/shard/config.js';
import type { ShardSpec } from '../src/core/keyset.js';
import { scannedPast } from '../src/shard/late_check.js';
import { orderedForAge, shardReadRanges } from '../src/shard/snapshot_age.js';
import type { ReadRange } from '../src/state/types.js';
import { runCli, tempDir, writeConfig } from './helpers/cli.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const noSecrets = { secrets: { env: {}, secretsDir: undefined } };

function configOf(source: Record<string, unknown>, rest: Record<string, unknown>): Config {
  return loadConfigText(YAML.stringify({ source: { maxSnapshotAge: 'PT1M', ...source }, ...rest }), noSecrets);
}

describe('source.maxSnapshotAge: the pieces', () => {
  const shard: ShardSpec = { index: 0, id: 'S', lo: { ts: '2026-01-01T00:00:00.000000Z', key: null }, hi: { ts: '2026-01-01T01:00:00.000000Z', key: null }, estimatedRows: 1000 };

  it('a shard read in one snapshot is one range; one renewed twice, three, cut at the first row each renewed read returned', () => {
    expect(shardReadRanges(shard, { snapshot: '10:12:' })).toEqual([{ id: 'S', lo: shard.lo, hi: shard.hi, snapshot: '10:12:', late: 0 }]);
    const a = { ts: '2026-01-01T00:20:00.000000Z', key: 'k1' };
    const b = { ts: '2026-01-01T00:40:00.000000Z', key: 'k2' };
    expect(shardReadRanges(shard, { snapshot: '10:12:', renewals: [{ lo: a, snapshot: '15:15:' }, { lo: b, snapshot: '20:21:20' }] })).toEqual([
      { id: 'S', lo: shard.lo, hi: a, snapshot: '10:12:', late: 0 },
      { id: 'S-r1', lo: a, hi: b, snapshot: '15:15:', late: 0 },
      { id: 'S-r2', lo: b, hi: shard.hi, snapshot: '20:21:20', late: 0 },
    ]);
  });

  it('a shard expected to take over half the limit is read ordered from the start; delete and late catch-ups have no limit', () => {
    const config = configOf({ url: 'postgres://u@localhost/db' }, { logExporters: [{ id: 'f', type: 'file', directory: 'out' }] });
    expect(orderedForAge(config, shard, null)).toBe(false);
    expect(orderedForAge(config, shard, 29 * SECOND)).toBe(false);
    expect(orderedForAge(config, shard, 31 * SECOND)).toBe(true);
    expect(orderedForAge({ ...config, delete: true }, shard, 31 * SECOND)).toBe(false);
    expect(orderedForAge(config, { ...shard, late: { of: 'S', n: 1, since: '1:1:' } }, 31 * SECOND)).toBe(false);
    expect(orderedForAge({ ...config, source: { ...config.source, maxSnapshotAgeMs: 0 } }, shard, 31 * SECOND)).toBe(false);
  });

  it('a carried late check is complete once the ordered scan has passed every range it checks', () => {
    const range = (hi: { ts: string; key: string | null }): ReadRange => ({ id: 'R', lo: shard.lo, hi, snapshot: '1:1:', late: 0 });
    const at = { ts: '2026-01-01T00:30:00.000000Z', key: 'm' };
    expect(scannedPast(at, [range({ ts: '2026-01-01T00:30:00.000000Z', key: null })])).toBe(true);
    expect(scannedPast(at, [range({ ts: '2026-01-01T00:30:00.000000Z', key: 'm' })])).toBe(true);
    expect(scannedPast(at, [range({ ts: '2026-01-01T00:30:00.000000Z', key: 'n' })])).toBe(false);
    expect(scannedPast(at, [range({ ts: '2026-01-01T00:10:00.000000Z', key: null }), range({ ts: '2026-01-01T00:31:00.000000Z', key: null })])).toBe(false);
  });
});

describe('source.maxSnapshotAge: configuration', () => {
  const base = { logExporters: [{ id: 'f', type: 'file', directory: 'out' }] };
  const load = (maxSnapshotAge?: unknown) => loadConfigText(YAML.stringify({ ...base, source: maxSnapshotAge === undefined ? {} : { maxSnapshotAge } }), noSecrets).source;

  it('defaults to ten minutes; PT0S is no limit', () => {
    expect(load()).toMatchObject({ maxSnapshotAgeMs: 10 * MINUTE, maxSnapshotAgeSet: false });
    expect(load('PT0S')).toMatchObject({ maxSnapshotAgeMs: 0, maxSnapshotAgeSet: true });
    expect(load('PT90S').maxSnapshotAgeMs).toBe(90 * SECOND);
  });

  it.each([
    ['a duration in months', 'P1M', 'source.maxSnapshotAge: must be a fixed-length duration, without years or months (such as PT10M, or PT0S for no limit) (got "P1M")'],
    ['no duration at all', 'ten minutes', /^source\.maxSnapshotAge: /],
  ])('refuses %s in one line naming the option', (_what, value, expected) => {
    let message = '';
    try {
      load(value);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
    expect(message).not.toContain('\n');
  });

  it('the CLI exits 2 with that line', async () => {
    const dir = tempDir('snapage-config');
    const cfg = writeConfig(dir, { source: { url: 'postgres://u@127.0.0.1:1/db', maxSnapshotAge: 'P1M' }, ...base });
    const r = await runCli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('source.maxSnapshotAge: must be a fixed-length duration');
  });
});
