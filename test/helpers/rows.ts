import { microsToTs, shardId } from '../../src/core/keyset.js';
import type { ShardSpec } from '../../src/core/keyset.js';
import { RowBatchBuilder, type RowBatch } from '../../src/source/row_batch.js';
import { seeded } from './seeded.js';

/** One source row as an in-process test hands it to an exporter: key, event time, document. */
export interface TestRow {
  key: string;
  tsMicros: number;
  doc: Record<string, unknown>;
}

const NAMESPACES = ['company.team', 'company.team.backend', 'company.team.data.etl', 'company.teamx', 'system', 'company_team'];
const LEVELS = ['TRACE', 'DEBUG', 'DEBUG', 'INFO', 'INFO', 'INFO', 'INFO', 'WARN', 'ERROR'];
const MESSAGES = [
  (g: number) => `Task started: processed ${g} records in ${g % 977} ms`,
  (g: number) => `Überprüfung abgeschlossen — état: ok ✓ 日本語のログ ${g}`,
  (g: number) => `Multi-line output:\n  line "one"\n\tline two ${g}`,
  (g: number) => `emoji 🚀 and backslash \\ and quote " in message ${g}`,
];

/**
 * `n` Kestra log rows as the source would read them for one shard: in (timestamp, key) order,
 * keys compared byte-wise, with timestamp ties, non-ASCII and multi-line messages. The same
 * documents `seedKestraLogs` makes in PostgreSQL, built here so in-process tests need no database.
 * Times start `startMs` (default: two hours ago, inside every platform's accepted window).
 */
export function kestraRows(n: number, o: { seed?: number; startMs?: number; stepMs?: number } = {}): TestRow[] {
  const random = seeded(o.seed ?? 7);
  const start = (o.startMs ?? Date.now() - 2 * 3600_000) * 1000;
  const step = (o.stepMs ?? 500) * 1000;
  const rows: TestRow[] = [];
  for (let g = 1; g <= n; g++) {
    const tsMicros = start + Math.floor((g - 1) / 3) * step; // groups of three share a timestamp
    const key = Math.floor(random() * 0xffffffff).toString(16).padStart(8, '0') + g.toString(36).padStart(6, '0');
    rows.push({
      key,
      tsMicros,
      doc: {
        tenantId: 'main',
        namespace: NAMESPACES[g % 6],
        flowId: `flow_${g % 37}`,
        taskId: `task_${g % 11}`,
        executionId: `exec${Math.floor(g / 40)}`,
        taskRunId: `run${Math.floor(g / 8)}`,
        attemptNumber: (g % 3) + 1,
        ...(g % 7 === 0 ? { triggerId: 'schedule' } : {}),
        timestamp: microsToTs(tsMicros),
        level: LEVELS[(g * 7919) % 9],
        thread: `WorkerThread-${g % 16}`,
        message: MESSAGES[g % MESSAGES.length]!(g),
        ...(g % 4 === 0 ? { executionKind: 'NORMAL' } : {}),
      },
    });
  }
  return rows.sort((a, b) => a.tsMicros - b.tsMicros || Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
}

/** The rows as the reader's batches of `size` rows. */
export function batchesOf(rows: readonly TestRow[], size: number): RowBatch[] {
  const out: RowBatch[] = [];
  for (let at = 0; at < rows.length; at += size) {
    const slice = rows.slice(at, at + size);
    const b = new RowBatchBuilder(slice.length + 1, 1 << 30);
    for (const r of slice) b.addStrings(r.key, r.tsMicros, JSON.stringify(r.doc));
    out.push(b.take());
  }
  return out;
}

/** A shard spanning the rows (one microsecond past the last, as the planner's half-open ranges). */
export function shardOf(rows: readonly TestRow[], index = 0): ShardSpec {
  const lo = { ts: microsToTs(rows[0]!.tsMicros), key: null };
  const hi = { ts: microsToTs(rows.at(-1)!.tsMicros + 1), key: null };
  return { index, id: shardId('test', lo, hi), lo, hi, estimatedRows: rows.length };
}
