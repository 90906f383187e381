import { describe, expect, it } from 'vitest';
import { RunMetrics, serveMetrics } from '../src/run/metrics.js';
import { parseSampleValue } from './helpers/platforms/pushgateway_server.js';

/**
 * Prometheus' naming rules, checked on the page logship serves. promtool (`promtool check
 * metrics`) cannot be installed here and no maintained npm package lints the text format, so the
 * rules are written out below, after https://prometheus.io/docs/practices/naming/ and promtool's
 * own linter (promlint): valid names, snake_case, counters and only counters ending in _total,
 * base units as suffixes, no type in the name, HELP and TYPE for every family.
 */

interface Family { name: string; type: string | undefined; help: string | undefined; samples: { name: string; labels: Record<string, string>; value: number }[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SNAKE_CASE = /^[a-z_][a-z0-9_]*$/;
const SAMPLE = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([^\s=,]+)="((?:[^"\\]|\\.)*)"(,|$)/y;
/** Base units (Prometheus names every quantity in one of these) and names of others that must not appear. */
const BASE_UNITS = ['seconds', 'bytes', 'ratio', 'celsius', 'meters', 'volts', 'amperes', 'joules', 'grams'];
const NON_BASE_UNITS = /(?:^|_)(milliseconds|microseconds|nanoseconds|minutes|hours|days|ms|us|ns|sec|secs|kilobytes|megabytes|gigabytes|kb|mb|gb|kib|mib|gib|bits|percent)(?:_|$)/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

/** The text exposition format, strictly: a line that is neither a comment, nor a sample, nor blank fails. */
function parseFamilies(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: undefined, help: undefined, samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = family(meta[2]!);
      if (meta[1] === 'HELP') f.help = meta[3];
      else f.type = meta[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not the text exposition format: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      LABEL_PAIR.lastIndex = 0;
      while (LABEL_PAIR.lastIndex < m[2].length) {
        const l = LABEL_PAIR.exec(m[2]);
        if (!l) throw new Error(`bad labels in ${JSON.stringify(line)}`);
        labels[l[1]!] = l[2]!;
      }
    }
    const name = m[1]!;
    const base = [...families.keys()].find((f) => name === f || (/_(bucket|sum|count)$/.test(name) && name.replace(/_(bucket|sum|count)$/, '') === f));
    if (!base) throw new Error(`sample ${name} has no # TYPE line before it`);
    const value = parseSampleValue(m[3]!);
    if (value === null) throw new Error(`bad value in ${JSON.stringify(line)}`);
    families.get(base)!.samples.push({ name, labels, value });
  }
  return families;
}

/** Every rule a family breaks, as readable lines (empty when it follows them all). */
function namingProblems(f: Family): string[] {
  const out: string[] = [];
  const { name, type } = f;
  if (!METRIC_NAME.test(name)) out.push(`${name}: not a valid metric name`);
  if (name.includes(':')) out.push(`${name}: colons are reserved for recording rules`);
  if (!SNAKE_CASE.test(name)) out.push(`${name}: not snake_case`);
  if (!f.help) out.push(`${name}: no HELP text`);
  if (!type || !TYPES.includes(type)) out.push(`${name}: no valid TYPE (got ${type})`);
  if (type === 'counter' && !name.endsWith('_total')) out.push(`${name}: a counter must end in _total`);
  if (type !== 'counter' && name.endsWith('_total')) out.push(`${name}: only counters end in _total (this is a ${type})`);
  if (type !== 'histogram' && type !== 'summary' && /_(bucket|count|sum)$/.test(name)) out.push(`${name}: _bucket, _count and _sum are reserved for histograms and summaries`);
  for (const t of TYPES) if (name.split('_').includes(t)) out.push(`${name}: the type (${t}) does not belong in the name`);
  const unitless = name.replace(/_total$/, '');
  const nonBase = NON_BASE_UNITS.exec(unitless);
  if (nonBase) out.push(`${name}: ${nonBase[1]} is not a base unit (use seconds, bytes…)`);
  for (const unit of BASE_UNITS) {
    if (unitless.split('_').includes(unit) && !unitless.endsWith(`_${unit}`)) out.push(`${name}: the unit (${unit}) must be the suffix, before _total for a counter`);
  }
  for (const s of f.samples) {
    for (const label of Object.keys(s.labels)) {
      if (!LABEL_NAME.test(label)) out.push(`${name}: label ${label} is not a valid label name`);
      if (!SNAKE_CASE.test(label)) out.push(`${name}: label ${label} is not snake_case`);
      if (label.startsWith('__')) out.push(`${name}: label ${label} is reserved (leading __)`);
      if (label === 'le' && !(type === 'histogram' && s.name === `${name}_bucket`)) out.push(`${name}: label le is reserved for histogram buckets`);
    }
  }
  return [...new Set(out)];
}

/** A registry with every series logship may register: a distributed --follow worker's worth. */
function exercisedMetrics(): RunMetrics {
  const m = new RunMetrics('my-offset', ['files', 'es']);
  m.planned(1000);
  m.read(500, 64_000);
  m.shardDone({ rows: 500, deletedRows: null, snapshot: '1:2:', badRows: 0, exporters: [{ exporterId: 'files', rows: 500, bytes: 9000, parts: [], removed: [], deadLettered: 0 }] }, 1.5);
  m.shardExported({ rows: 500, deletedRows: null, snapshot: '1:2:', badRows: 0, exporters: [{ exporterId: 'es', rows: 500, bytes: 64_000, parts: [], removed: [], deadLettered: 0 }] }, 2);
  m.shardRecorded(500);
  m.shardStates({ queued: 1, running: 1, done: 1, failed: 0 });
  m.offset({ ts: '2026-03-01T00:00:00.000000Z', key: 'k1' });
  m.cycleEnded('ok');
  m.delivery('es', { kind: 'request', outcome: 'retried' });
  m.delivery('es', { kind: 'dead-lettered', count: 2, reason: 'status_400' });
  m.setStatus('ok');
  return m;
}

describe('the /metrics page follows Prometheus naming rules', () => {
  it('every family, logship\'s and the process\'s, as served over HTTP', async () => {
    const metrics = exercisedMetrics();
    const server = await serveMetrics(metrics, 0);
    let text: string;
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      text = await res.text();
    } finally {
      await server.close();
    }
    const families = parseFamilies(text);
    const problems = [...families.values()].flatMap(namingProblems);
    expect(problems).toEqual([]);
    const names = [...families.keys()];
    // logship's own, each of them present (the registry above exercised every one).
    expect(names.filter((n) => n.startsWith('logship_')).sort()).toEqual([
      'logship_cycles_total', 'logship_dead_letters_total', 'logship_exported_bytes_total', 'logship_lag_seconds', 'logship_last_success_timestamp_seconds',
      'logship_offset_timestamp_seconds', 'logship_read_bytes_total', 'logship_requests_total', 'logship_retries_total', 'logship_rows_done_total',
      'logship_rows_exported_total', 'logship_rows_planned', 'logship_rows_read_total', 'logship_run_status', 'logship_shard_duration_seconds', 'logship_shards',
    ]);
    for (const n of names.filter((x) => x.startsWith('logship_'))) {
      expect(families.get(n)!.samples.length, `${n} has samples`).toBeGreaterThan(0);
      for (const s of families.get(n)!.samples) expect(s.labels.offset_key, `${s.name} carries offset_key`).toBe('my-offset');
    }
    // The process's, under the names every Prometheus client library uses.
    expect(names).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds']));
    expect(families.get('process_cpu_seconds_total')!.samples[0]!.value).toBeGreaterThan(0);
    expect(families.get('process_resident_memory_bytes')!.samples[0]!.value).toBeGreaterThan(1 << 20);
  });

  it('the rules catch what they are for (a check that cannot fail proves nothing)', () => {
    const page = (name: string, type: string, sample: string) => parseFamilies(`# HELP ${name} h\n# TYPE ${name} ${type}\n${sample}\n`).get(name)!;
    expect(namingProblems(page('x_rows_total', 'counter', 'x_rows_total{offsetKey="a"} 1'))).toEqual(['x_rows_total: label offsetKey is not snake_case']);
    expect(namingProblems(page('x_rows', 'counter', 'x_rows 1'))).toEqual(['x_rows: a counter must end in _total']);
    expect(namingProblems(page('x_active_total', 'gauge', 'x_active_total 1'))).toEqual(['x_active_total: only counters end in _total (this is a gauge)']);
    expect(namingProblems(page('x_bytes_sent_total', 'counter', 'x_bytes_sent_total 1'))).toEqual(['x_bytes_sent_total: the unit (bytes) must be the suffix, before _total for a counter']);
    expect(namingProblems(page('x_duration_ms', 'gauge', 'x_duration_ms 1'))).toEqual(['x_duration_ms: ms is not a base unit (use seconds, bytes…)']);
    expect(namingProblems(page('xLag', 'gauge', 'xLag 1'))).toEqual(['xLag: not snake_case']);
    expect(namingProblems(parseFamilies('# TYPE x gauge\nx 1\n').get('x')!)).toEqual(['x: no HELP text']);
    expect(() => parseFamilies('x 1\n')).toThrow(/no # TYPE line/);
  });
});
