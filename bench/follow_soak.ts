// The soak half of `npm run bench:follow` (issue #25): what a sample of the follow process holds,
// and the verdict against the issue's target, "peak RSS at the end within 10% of cycle 10, with no
// growth in open handles or connections". RSS here is the process's current resident set (VmRSS),
// not its high-water mark (VmHWM, which can only grow; shown for reference).
import fs from 'node:fs';

export interface SoakSample {
  /** Cycles finished (logship_cycles_total{outcome="ok"}) when sampled. */
  cycle: number;
  seconds: number;
  rssMiB: number;
  /** Of the RSS: anonymous memory (heaps, stacks, malloc) and file pages (mostly the node binary). */
  anonMiB: number;
  fileMiB: number;
  hwmMiB: number;
  fds: number;
  threads: number;
  /** The server's sessions named logship*. */
  sessions: number;
  /** 1-minute load average. */
  load: number;
}

/** The process's memory, descriptors and threads from /proc (Linux). */
export function procStats(pid: number): Pick<SoakSample, 'rssMiB' | 'anonMiB' | 'fileMiB' | 'hwmMiB' | 'fds' | 'threads'> {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return {
    rssMiB: kb('VmRSS') / 1024, anonMiB: kb('RssAnon') / 1024, fileMiB: kb('RssFile') / 1024, hwmMiB: kb('VmHWM') / 1024,
    fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads: kb('Threads'),
  };
}

const SOAK_HEADER = '| cycle | s | RSS MiB | anon | file | VmHWM MiB | open fds | threads | logship sessions | load (1 min) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';

export function soakRow(s: SoakSample): string {
  const f = (x: number) => x.toFixed(1);
  return `| ${s.cycle} | ${f(s.seconds)} | ${f(s.rssMiB)} | ${f(s.anonMiB)} | ${f(s.fileMiB)} | ${f(s.hwmMiB)} | ${s.fds} | ${s.threads} | ${s.sessions} | ${s.load.toFixed(2)} |`;
}

/** The issue's bound: the end's peak RSS may exceed cycle 10's by at most this fraction. */
export const RSS_GROWTH_ALLOWED = 0.1;

type Counted = 'fds' | 'threads' | 'sessions';

const pct = (x: number, of: number) => `${x >= of ? '+' : ''}${(((x - of) / of) * 100).toFixed(1)}%`;

/**
 * The report: the marks' table, then the verdict. "Peak RSS at the end" is the highest current
 * RSS sampled over the last 10% of the cycles; the reference is the first sample at or after
 * cycle 10. Handles and connections must not grow: the fewest seen over the last 10% of the
 * samples is no more than the fewest over the first 10% (a descriptor open only while a cycle
 * writes its state is not growth; a leaked one raises the floor).
 */
export function soakReport(o: { title: string; setting: string; samples: SoakSample[]; marks: SoakSample[]; cycles: number; exit: string; loadBefore: string; loadAfter: string; date: string }): string {
  const first = o.marks[0];
  const last = o.samples.at(-1);
  const lines = [`### Soak, ${o.title}, ${o.date}`, '', `${o.setting}; follow exit ${o.exit}; load average before ${o.loadBefore}, after ${o.loadAfter}.`, '', SOAK_HEADER, ...o.marks.map(soakRow), ''];
  if (!first || !last || last.cycle < o.cycles) return [...lines, `**No verdict**: the run ended at cycle ${last?.cycle ?? 0} of ${o.cycles}.`].join('\n');
  const tail = o.samples.filter((s) => s.cycle >= Math.ceil(o.cycles * 0.9));
  const peak = tail.reduce((m, s) => (s.rssMiB > m.rssMiB ? s : m));
  const bound = first.rssMiB * (1 + RSS_GROWTH_ALLOWED);
  const memoryOk = peak.rssMiB <= bound;
  const head = o.samples.filter((s) => s.cycle <= Math.max(first.cycle, o.cycles * 0.1));
  const floor = (xs: SoakSample[], k: Counted) => Math.min(...xs.map((s) => s[k]));
  const counts = (k: Counted) => `${floor(head, k)} → ${floor(tail, k)} (max ${Math.max(...o.samples.map((s) => s[k]))})`;
  const handlesOk = (['fds', 'threads', 'sessions'] as const).every((k) => floor(tail, k) <= floor(head, k));
  const warm = o.marks.find((s) => s.cycle >= o.cycles / 10 && s !== first);
  lines.push(
    `- RSS at cycle ${first.cycle}: **${first.rssMiB.toFixed(1)} MiB** (load ${first.load.toFixed(2)}); at the end, cycle ${last.cycle}: **${last.rssMiB.toFixed(1)} MiB** (${pct(last.rssMiB, first.rssMiB)}, load ${last.load.toFixed(2)}).`,
    `- Peak RSS over the last 10% of cycles (${tail.length} samples, cycles ${tail[0]!.cycle}–${last.cycle}): **${peak.rssMiB.toFixed(1)} MiB** at cycle ${peak.cycle} (${pct(peak.rssMiB, first.rssMiB)} on cycle ${first.cycle}; bound ${bound.toFixed(1)} MiB).`,
    `- Fewest over the first 10% of samples → over the last 10%: open fds ${counts('fds')}, threads ${counts('threads')}, logship sessions ${counts('sessions')}.`,
    `- Target "peak RSS at the end within ${RSS_GROWTH_ALLOWED * 100}% of cycle 10": **${memoryOk ? 'PASS' : 'FAIL'}**. No growth in handles or connections: **${handlesOk ? 'PASS' : 'FAIL'}**.`,
  );
  // Not the target: how flat the memory is once the process is warm.
  if (warm) lines.push(`- For reference only (not the target): from cycle ${warm.cycle} (${warm.rssMiB.toFixed(1)} MiB) to the last 10%'s peak: ${pct(peak.rssMiB, warm.rssMiB)}.`);
  return lines.join('\n');
}

/**
 * Replaces the `name` section of the results file (between its markers), or appends it: the
 * latency and the soak are separate runs of the bench and each rewrites only its own figures.
 */
export function writeSection(file: string, name: string, text: string): void {
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# `npm run bench:follow` (issue #25)\n';
  const block = `${open}\n${text}\n${close}`;
  const at = old.indexOf(open);
  const end = old.indexOf(close);
  const next = at >= 0 && end > at ? old.slice(0, at) + block + old.slice(end + close.length) : `${old.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, next);
}
