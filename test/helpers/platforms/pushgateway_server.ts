import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** One sample of the Prometheus text exposition format. */
export interface Sample { name: string; labels: Record<string, string>; value: number }

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the text exposition format strictly: a line that is neither a comment nor a sample is an error. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not the text exposition format: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    const value = parseSampleValue(m[3]!);
    if (value === null) throw new Error(`bad sample value in ${JSON.stringify(line)}`);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/**
 * A sample value as Prometheus reads it (Go's strconv.ParseFloat): special values in any case, so
 * prom-client's "Nan" (an event-loop lag mean before its first sample) is a valid NaN.
 */
export function parseSampleValue(text: string): number | null {
  const special = text.toLowerCase().replace(/^\+/, '');
  if (special === 'nan') return NaN;
  if (special === 'inf' || special === 'infinity') return Infinity;
  if (special === '-inf' || special === '-infinity') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) || text.trim() === '' ? null : value;
}

export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/**
 * The Prometheus Pushgateway's push API: `PUT /metrics/job/<job>{/<label>/<value>}` replaces the
 * group with the body (text format), `POST` merges into it, `DELETE` drops it. Bodies are parsed
 * strictly and a malformed one gets a 400, as the real gateway answers.
 */
export class PushgatewayServer extends PlatformEndpoint {
  /** Group path (`job/logship/offset_key/x`) → its metrics, as last pushed. */
  readonly groups = new Map<string, Sample[]>();
  pushes = 0;

  protected handle(r: ReceivedRequest): Answer {
    const m = /^\/metrics\/(job\/.+)$/.exec(r.path);
    if (!m) return { status: 404, body: 'not found' };
    const group = m[1]!.split('/').map(decodeURIComponent).join('/');
    if (r.method === 'DELETE') {
      this.groups.delete(group);
      return { status: 202 };
    }
    if (r.method !== 'PUT' && r.method !== 'POST') return { status: 405 };
    let samples: Sample[];
    try {
      samples = parseExposition(r.body.toString('utf8'));
    } catch (err) {
      return { status: 400, body: (err as Error).message };
    }
    this.pushes++;
    if (r.method === 'PUT') this.groups.set(group, samples);
    else this.groups.set(group, [...(this.groups.get(group) ?? []).filter((s) => !samples.some((n) => n.name === s.name)), ...samples]);
    return { status: 200 };
  }
}
