import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ObjectService } from '../src/sinks/types.js';
import { RotatingPartWriter } from '../src/sinks/part_writer.js';
import { FileService } from '../src/sinks/file/service.js';
import { RowBatchBuilder, type RowBatch } from '../src/source/row_batch.js';
import { shardId, tsToMicros, microsToTs } from '../src/core/keyset.js';
import type { OutputOptions } from '../src/encode/options.js';
import type { ShardSpec } from '../src/core/keyset.js';
import { docsOfFile, listParts, listTempFiles, normalize, tempDir } from './helpers/cli.js';
import { waitFor } from './helpers/wait.js';
import { seeded } from './helpers/seeded.js';

const lo = { ts: '2026-03-01T22:30:00.000000Z', key: null };
const hi = { ts: '2026-03-02T02:00:00.000000Z', key: null };
const shard: ShardSpec = { index: 0, id: shardId('k', lo, hi), lo, hi, estimatedRows: 0 };

/** n rows, one every `everySeconds`, starting at lo. */
function batchOf(n: number, everySeconds = 1, fill = ''): RowBatch {
  const b = new RowBatchBuilder(n + 1, 1 << 30);
  const start = tsToMicros(lo.ts);
  for (let i = 0; i < n; i++) b.addStrings(`k${i}`, start + i * everySeconds * 1e6, JSON.stringify({ i, msg: `row ${i} ✓${fill}` }));
  return b.take();
}

function options(over: Partial<OutputOptions>): OutputOptions {
  return {
    format: 'NDJSON', parquetCompression: 'ZSTD', rowGroupSize: 20_000, compression: 'gzip', compressionLevel: 1, maxLinesPerFile: 100, maxBytesPerFile: 1 << 30,
    logFilePrefix: 'logs', keyTemplate: '{prefix}-{shard}-{part}.{ext}', ...over,
  };
}

async function writeShard(dir: string, opts: OutputOptions, batches: RowBatch[]) {
  const w = new RotatingPartWriter('exp', opts, new FileService('exp', dir), shard, undefined);
  for (const b of batches) await w.write(b);
  return w.finish();
}

describe('rotation and naming', () => {
  it('rotates at maxLinesPerFile with deterministic, numbered names', async () => {
    const dir = tempDir('rotate');
    const result = await writeShard(dir, options({ maxLinesPerFile: 40 }), [batchOf(70), batchOf(30)]);
    expect(result.parts.map((p) => p.rows)).toEqual([40, 40, 20]);
    expect(result.parts.map((p) => p.name)).toEqual([1, 2, 3].map((n) => `logs-${shard.id}-0000${n}.ndjson.gz`));
    expect(listParts(dir).map((f) => path.basename(f))).toEqual(result.parts.map((p) => p.name));
    expect(result.parts[0]!.minTs).toBe(microsToTs(tsToMicros(lo.ts)));
    expect(result.bytes).toBe(listParts(dir).reduce((s, f) => s + fs.statSync(f).size, 0));
  });

  it('rotates at maxBytesPerFile on uncompressed bytes, and gives an oversized row its own file', async () => {
    const dir = tempDir('bytes');
    const rows = batchOf(10, 1, 'x'.repeat(80)); // ~100 bytes a row
    const big = new RowBatchBuilder(2, 1 << 30);
    big.addStrings('huge', tsToMicros(lo.ts) + 20e6, JSON.stringify({ msg: 'y'.repeat(5000) }));
    const result = await writeShard(dir, options({ maxBytesPerFile: 350, compression: 'none' }), [rows, big.take()]);
    for (const f of listParts(dir)) expect(fs.statSync(f).size <= 350 || docsOfFile(f).length === 1).toBe(true);
    expect(result.parts.reduce((s, p) => s + p.rows, 0)).toBe(11);
    expect(result.parts.at(-1)!.rows).toBe(1);
  });

  it('writes a JSON array per file that parses back to the same documents', async () => {
    const dir = tempDir('json');
    const batch = batchOf(25);
    await writeShard(dir, options({ format: 'JSON', maxLinesPerFile: 10, compression: 'zstd' }), [batch]);
    const files = listParts(dir);
    expect(files.every((f) => f.endsWith('.json.zst'))).toBe(true);
    const docs = files.flatMap(docsOfFile);
    expect(docs).toEqual(Array.from({ length: 25 }, (_, i) => normalize(batch.doc(i).toString())));
  });

  it('starts a new file at each event-time hour when the template names {hour}', async () => {
    const dir = tempDir('hourly');
    const tpl = '{prefix}/dt={date}/hour={hour}/{prefix}-{shard}-{part}.{ext}';
    const result = await writeShard(dir, options({ keyTemplate: tpl }), [batchOf(8, 1800)]); // 22:30 .. 02:00
    expect(result.parts.map((p) => p.name)).toEqual([
      `logs/dt=2026-03-01/hour=22/logs-${shard.id}-00001.ndjson.gz`,
      `logs/dt=2026-03-01/hour=23/logs-${shard.id}-00002.ndjson.gz`,
      `logs/dt=2026-03-02/hour=00/logs-${shard.id}-00003.ndjson.gz`,
      `logs/dt=2026-03-02/hour=01/logs-${shard.id}-00004.ndjson.gz`,
      `logs/dt=2026-03-02/hour=02/logs-${shard.id}-00005.ndjson.gz`,
    ]);
    expect(result.parts.map((p) => p.rows)).toEqual([1, 2, 2, 2, 1]);
  });
});

it("never puts a row in another hour's file when rows arrive out of order, and keeps one file per hour open", async () => {
  const dir = tempDir('unordered');
  const b = new RowBatchBuilder(10, 1 << 30);
  const t0 = tsToMicros(lo.ts);
  for (const [i, offsetS] of [[0, 3600], [1, 0], [2, 3700], [3, 60]] as const) b.addStrings(`k${i}`, t0 + offsetS * 1e6, JSON.stringify({ i }));
  const result = await writeShard(dir, options({ keyTemplate: '{prefix}/hour={hour}/{prefix}-{shard}-{part}.{ext}' }), [b.take()]);
  expect(result.parts.map((p) => [p.name.split('/')[1], p.rows])).toEqual([['hour=23', 2], ['hour=22', 2]]);
  for (const p of result.parts) {
    const hour = p.name.split('/')[1]!.slice(5);
    for (const d of docsOfFile(path.join(dir, p.name))) expect([0, 2].includes(JSON.parse(d).i)).toBe(hour === '23');
  }
});

it("lets the next part fill while a large part's fsync and rename are still under way, and commits parts in order", async () => {
  const dir = tempDir('overlap');
  const service = new FileService('exp', dir);
  const events: string[] = [];
  let releaseFirstCommit!: () => void;
  const firstCommitGate = new Promise<void>((resolve) => (releaseFirstCommit = resolve));
  let opened = 0;
  const gated = Object.assign(Object.create(service) as FileService, {
    async open(name: string, type: string, enc: string | undefined) {
      const upload = await (service as ObjectService).open(name, type, enc);
      const part = ++opened;
      events.push(`open ${part}`);
      // The second part opening is what lets the first one's commit finish: had the writer
      // awaited that commit before opening the next part, this test would wait out its timeout.
      if (part === 2) releaseFirstCommit();
      const commit = upload.commit.bind(upload);
      return Object.assign(upload, {
        async commit() {
          events.push(`commit ${part} starts`);
          if (part === 1) await firstCommitGate;
          await commit();
          events.push(`commit ${part} done`);
        },
      });
    },
  });
  // Rows of ~2 KB of seeded noise, which gzip cannot shrink: each 800-row part is over 1 MiB,
  // compressed or not, a large part.
  const random = seeded(15);
  const b = new RowBatchBuilder(1601, 1 << 30);
  for (let i = 0; i < 1600; i++) b.addStrings(`k${i}`, tsToMicros(lo.ts) + i * 1e6, JSON.stringify({ i, noise: Buffer.from(Array.from({ length: 1500 }, () => Math.floor(random() * 256))).toString('base64') }));
  const w = new RotatingPartWriter('exp', options({ maxLinesPerFile: 800 }), gated, shard, undefined);
  await w.write(b.take());
  const result = await w.finish();
  // Part 1's tail (its last deflates, then its commit) and part 2's filling interleave in no fixed
  // order; what is fixed is that part 2 opened before part 1's commit finished, and that the
  // commits ran one after the other, in order.
  expect(events.indexOf('open 2')).toBeLessThan(events.indexOf('commit 1 done'));
  expect(events.filter((e) => e.startsWith('commit'))).toEqual(['commit 1 starts', 'commit 1 done', 'commit 2 starts', 'commit 2 done']);
  expect(result.parts.map((p) => p.rows)).toEqual([800, 800]);
  expect(result.parts.every((p) => p.bytes > 1 << 20)).toBe(true);
  expect(result.parts.map((p) => p.bytes)).toEqual(listParts(dir).map((f) => fs.statSync(f).size));
  expect(listParts(dir).flatMap(docsOfFile)).toHaveLength(1600);
});

it('writes a sparse shard spanning thousands of hours as one part sequence per hour, with a bounded number open', async () => {
  const dir = tempDir('sparse');
  const wide: ShardSpec = { index: 0, id: shardId('k', { ts: '2018-01-01T00:00:00.000000Z', key: null }, hi), lo: { ts: '2018-01-01T00:00:00.000000Z', key: null }, hi, estimatedRows: 0 };
  // 600 rows, one every 3 days, shuffled by a fixed permutation (rows of a shard come unsorted).
  const day = 86_400e6;
  const t0 = tsToMicros(wide.lo.ts);
  const order = Array.from({ length: 600 }, (_, i) => (i * 397) % 600);
  const rows = () => {
    const b = new RowBatchBuilder(601, 1 << 30);
    for (const i of order) b.addStrings(`k${i}`, t0 + i * 3 * day, JSON.stringify({ i }));
    return b.take();
  };
  let open = 0;
  let mostOpen = 0;
  const service = new FileService('exp', dir);
  const counting = Object.assign(Object.create(service) as FileService, {
    async open(name: string, type: string, enc: string | undefined) {
      const upload = await (service as ObjectService).open(name, type, enc);
      mostOpen = Math.max(mostOpen, ++open);
      upload.sink.once('finish', () => open--); // the part's bytes are all written: no longer open
      return upload;
    },
  });
  const tpl = '{prefix}/dt={date}/hour={hour}/{prefix}-{shard}-{part}.{ext}';
  const w = new RotatingPartWriter('exp', options({ keyTemplate: tpl }), counting, wide, undefined);
  await w.write(rows());
  const result = await w.finish();
  expect(mostOpen).toBeLessThanOrEqual(4);
  expect(result.rows).toBe(600);
  expect(result.parts).toHaveLength(600);
  expect(new Set(result.parts.map((p) => p.name)).size).toBe(600);
  for (const p of result.parts) {
    const [, date] = /dt=(\d{4}-\d{2}-\d{2})/.exec(p.name)!;
    const docs = docsOfFile(path.join(dir, p.name));
    expect(docs).toHaveLength(1);
    expect(new Date(t0 / 1000 + JSON.parse(docs[0]!).i * 3 * 86_400_000).toISOString().slice(0, 10)).toBe(date);
  }
  // A rerun rewrites the same names and leaves no extra file.
  const again = new RotatingPartWriter('exp', options({ keyTemplate: tpl }), new FileService('exp', dir), wide, undefined);
  await again.write(rows());
  const second = await again.finish();
  expect(second.parts.map((p) => p.name)).toEqual(result.parts.map((p) => p.name));
  expect(listParts(dir)).toHaveLength(600);
});

describe('a shard rerun leaves exactly its final attempt', () => {
  it('removes parts and temp files an earlier attempt left behind', async () => {
    const dir = tempDir('stale');
    await writeShard(dir, options({ maxLinesPerFile: 10 }), [batchOf(50)]); // 5 parts
    fs.writeFileSync(path.join(dir, `.logs-${shard.id}-00009.ndjson.gz.4242.tmp`), 'half-written');
    fs.writeFileSync(path.join(dir, 'logs-other-shard-00001.ndjson.gz'), 'not ours');
    const result = await writeShard(dir, options({ maxLinesPerFile: 25 }), [batchOf(50)]); // 2 parts
    expect(result.removed.sort()).toEqual([`.logs-${shard.id}-00009.ndjson.gz.4242.tmp`, `logs-${shard.id}-00003.ndjson.gz`, `logs-${shard.id}-00004.ndjson.gz`, `logs-${shard.id}-00005.ndjson.gz`]);
    expect(listParts(dir).map((f) => path.basename(f))).toEqual([`logs-${shard.id}-00001.ndjson.gz`, `logs-${shard.id}-00002.ndjson.gz`, 'logs-other-shard-00001.ndjson.gz']);
    expect(listTempFiles(dir)).toEqual([]);
  });

  it('abort leaves no file behind', async () => {
    const dir = tempDir('abort');
    const w = new RotatingPartWriter('exp', options({ maxLinesPerFile: 1000 }), new FileService('exp', dir), shard, undefined);
    await w.write(batchOf(10));
    expect(listTempFiles(dir)).toHaveLength(1);
    await w.abort();
    expect(listTempFiles(dir)).toEqual([]);
    expect(listParts(dir)).toEqual([]);
  });
});

describe('distributed attempts write attempt-scoped parts', () => {
  /** A fence that confirms the attempt until `superseded` is set, as the claims table would. */
  function fenceOf(attempt: number, state: { superseded: boolean }) {
    return {
      attempt,
      check: async () => {
        if (state.superseded) throw new Error(`shard 0: attempt ${attempt} was superseded by a newer attempt`);
      },
    };
  }
  const names = (dir: string) => listParts(dir).map((f) => path.basename(f));

  it('names parts after the attempt, and the winner removes earlier attempts\' parts and local ones but never a newer attempt\'s', async () => {
    const dir = tempDir('attempts');
    const service = new FileService('exp', dir);
    await writeShard(dir, options({ maxLinesPerFile: 25 }), [batchOf(50)]); // a local run's 2 parts
    const newer = new RotatingPartWriter('exp', options({ maxLinesPerFile: 50 }), service, shard, undefined, fenceOf(3, { superseded: false }));
    await newer.write(batchOf(50));
    await newer.finish();
    const first = new RotatingPartWriter('exp', options({ maxLinesPerFile: 10 }), service, shard, undefined, fenceOf(1, { superseded: false }));
    await first.write(batchOf(50));
    await first.finish();
    expect(names(dir)).toEqual([
      ...[1, 2, 3, 4, 5].map((n) => `logs-${shard.id}-a1-0000${n}.ndjson.gz`),
      `logs-${shard.id}-a3-00001.ndjson.gz`,
    ]); // attempt 1 removed the local parts, left attempt 3's alone

    const winner = new RotatingPartWriter('exp', options({ maxLinesPerFile: 25 }), service, shard, undefined, fenceOf(2, { superseded: false }));
    await winner.write(batchOf(50));
    const result = await winner.finish();
    expect(result.removed.sort()).toEqual([1, 2, 3, 4, 5].map((n) => `logs-${shard.id}-a1-0000${n}.ndjson.gz`));
    expect(names(dir)).toEqual([`logs-${shard.id}-a2-00001.ndjson.gz`, `logs-${shard.id}-a2-00002.ndjson.gz`, `logs-${shard.id}-a3-00001.ndjson.gz`]);
  });

  it('refuses to publish a part once the attempt is superseded, and takes back the parts it had published', async () => {
    const dir = tempDir('superseded');
    const service = new FileService('exp', dir);
    const winner = new RotatingPartWriter('exp', options({ maxLinesPerFile: 20 }), service, shard, undefined, fenceOf(2, { superseded: false }));
    await winner.write(batchOf(30));
    await winner.finish();
    const state = { superseded: false };
    const stale = new RotatingPartWriter('exp', options({ maxLinesPerFile: 20 }), service, shard, undefined, fenceOf(1, state));
    await stale.write(batchOf(25)); // its first part (20 rows) is being published; 5 rows are open
    await waitFor('the stale attempt\'s first part to be renamed into place', () => names(dir).includes(`logs-${shard.id}-a1-00001.ndjson.gz`));
    state.superseded = true;
    // Its second part fills up in this batch: refused before its stream ends, so it never appears.
    await expect(stale.write(batchOf(30))).rejects.toThrow(/attempt 1 was superseded/);
    await stale.abort();
    expect(names(dir)).toEqual([`logs-${shard.id}-a2-00001.ndjson.gz`, `logs-${shard.id}-a2-00002.ndjson.gz`]);
    expect(listTempFiles(dir)).toEqual([]);
    // Exactly the winner's 30 rows, each once.
    expect(listParts(dir).flatMap(docsOfFile).map((d) => (JSON.parse(d) as { i: number }).i)).toEqual(Array.from({ length: 30 }, (_v, i) => i));
  });
});
