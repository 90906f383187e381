import { ConfigError } from '../core/errors.js';
import type { ShardSpec } from '../core/keyset.js';
import { tsToMicros } from '../core/keyset.js';
import type { Placeholder } from './output_options.js';

export type Granularity = 'hour' | 'day';

const HOUR_US = 3_600_000_000;
const DAY_US = 24 * HOUR_US;
/** A week of hours: shards spanning more partitions list only those they wrote to. */
const MAX_LISTED_PARTITIONS = 168;

/** Event-time partition size a template implies: hourly if it names {hour}, daily if only {date}. */
export function templateGranularity(template: string): Granularity | null {
  if (template.includes('{hour}')) return 'hour';
  if (template.includes('{date}')) return 'day';
  return null;
}

export function partitionStart(micros: number, g: Granularity): number {
  const size = g === 'hour' ? HOUR_US : DAY_US;
  return Math.floor(micros / size) * size;
}

export function partitionSize(g: Granularity): number {
  return g === 'hour' ? HOUR_US : DAY_US;
}

function dateHour(micros: number): { date: string; hour: string } {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return { date: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

export interface NameVars {
  prefix: string;
  exporter: string;
  shard: string;
  ext: string;
}

/**
 * Which attempts' part names a pattern matches. A local run's parts carry no attempt
 * (`…-00001.ndjson`); a distributed attempt's do (`…-a2-00001.ndjson`), so two attempts of one
 * shard never write the same name and a stale attempt can never overwrite the winner's part.
 *  - `any`: every attempt's names and the bare ones (a local attempt replaces them all);
 *  - `before`: the bare names and those of attempts 1 … n−1 (what attempt n may remove: never a
 *    newer attempt's, which may be the winner);
 *  - `only`: attempt n's names (what attempt n takes back when it does not finish).
 */
export type AttemptMatch = { which: 'any' } | { which: 'before' | 'only'; attempt: number };

function partRegex(m: AttemptMatch): string {
  if (m.which === 'any') return '(?:a\\d+-)?\\d{5,}';
  if (m.which === 'only') return `a${m.attempt}-\\d{5,}`;
  const earlier = Array.from({ length: m.attempt - 1 }, (_v, i) => String(i + 1));
  return earlier.length === 0 ? '\\d{5,}' : `(?:a(?:${earlier.join('|')})-)?\\d{5,}`;
}

/** Renders object names; the single owner of the template syntax. */
export class PartNamer {
  readonly granularity: Granularity | null;

  /** `attempt`: a distributed attempt's number, rendered into `{part}` as `a{attempt}-`. */
  constructor(
    private readonly template: string,
    private readonly vars: NameVars,
    private readonly attempt: number | null = null,
  ) {
    this.granularity = templateGranularity(template);
  }

  name(part: number, partitionMicros: number): string {
    const number = String(part).padStart(5, '0');
    return this.render(this.template, { ...this.vars, ...dateHour(partitionMicros), part: this.attempt === null ? number : `a${this.attempt}-${number}` });
  }

  /**
   * Prefixes under which a shard's names (of any attempt) lie: one per event-time partition.
   * Every partition of a short shard is listed; a long, sparse one lists the partitions this
   * attempt wrote to (`touched`), because an earlier attempt read the same rows and so wrote to
   * no other partition, and listing thousands of empty hours would cost a request each.
   */
  shardPrefixes(shard: ShardSpec, touched: number[] = []): string[] {
    const upToPart = this.template.slice(0, this.template.indexOf('{part}'));
    if (!this.granularity) return [this.render(upToPart, { ...this.vars, date: '', hour: '' })];
    const size = partitionSize(this.granularity);
    const from = partitionStart(tsToMicros(shard.lo.ts), this.granularity);
    const to = tsToMicros(shard.hi.ts);
    const out = new Set<string>();
    if ((to - from) / size <= MAX_LISTED_PARTITIONS) {
      for (let p = from; p <= to; p += size) out.add(this.render(upToPart, { ...this.vars, ...dateHour(p) }));
    }
    for (const p of touched) out.add(this.render(upToPart, { ...this.vars, ...dateHour(p) }));
    return [...out];
  }

  /** Matches exactly the names this shard can produce, whatever the part number or partition, of the attempts `attempts` selects. */
  shardPattern(attempts: AttemptMatch = { which: 'any' }): RegExp {
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    let re = '';
    let last = 0;
    for (const m of this.template.matchAll(/\{([a-z]+)\}/g)) {
      re += esc(this.template.slice(last, m.index));
      const p = m[1] as Placeholder;
      if (p === 'part') re += partRegex(attempts);
      else if (p === 'date') re += '\\d{4}-\\d{2}-\\d{2}';
      else if (p === 'hour') re += '\\d{2}';
      else re += esc(this.vars[p as keyof NameVars]);
      last = m.index! + m[0].length;
    }
    return new RegExp(`^${re}${esc(this.template.slice(last))}$`);
  }

  private render(template: string, vars: Record<string, string>): string {
    return template.replace(/\{([a-z]+)\}/g, (_m, p: string) => vars[p] ?? '');
  }
}

/** Why a rendered name would leave its directory or bucket prefix, or null when it stays inside. */
export function nameEscape(name: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(name)) return 'a control character';
  for (const segment of name.split('/')) {
    if (segment === '..') return 'a ".." segment';
    if (segment === '.') return 'a "." segment';
    if (segment === '') return 'an empty segment (a leading, trailing or double "/")';
  }
  return null;
}

/**
 * Every name an exporter writes (and every name the rerun cleanup lists and deletes) must stay
 * inside `directory`, or inside the bucket/container for object stores. Names are rendered from
 * keyTemplate, logFilePrefix and the exporter id; the other placeholders are digits and fixed
 * words. Each option is checked with the others neutral, so the error names the one at fault.
 */
export function checkNamesStayInside(at: (option: string) => string, where: string, template: string, prefix: string, exporterId: string): void {
  const sample = (p: string, e: string) =>
    new PartNamer(template, { prefix: p, exporter: e, shard: '20260101T000000Z-0123abcd', ext: 'ndjson.gz' }).name(1, 0);
  const culprits: [string, string][] = [['keyTemplate', sample('p', 'e')], ['logFilePrefix', sample(prefix, 'e')], ['id', sample(prefix, exporterId)]];
  for (const [option, name] of culprits) {
    const why = nameEscape(name);
    if (why) throw new ConfigError(at(option), `must keep every name inside ${where}: a rendered name has ${why}`);
  }
}
