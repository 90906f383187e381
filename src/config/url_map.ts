import { ConfigError } from '../core/errors.js';
import { deriveFromSecret } from '../core/secrets.js';

/** `--url-map FROM=TO`: URLs in the config that start with `from` start with `to` instead. */
export interface UrlRewrite {
  from: string;
  to: string;
  /** Where it was given, for errors: `--url-map` (the default) or `LOGSHIP_URL_MAP`. */
  option?: string;
}

const HTTP_URL = /^https?:\/\/[^/=\s]+/;

/** `--url-map FROM=TO`, repeatable: split at the first `=`; both sides are http(s) URLs. */
export function parseUrlMap(values: string[] | undefined, option = '--url-map'): UrlRewrite[] {
  return (values ?? []).map((v) => {
    const at = v.indexOf('=');
    const from = at < 0 ? '' : v.slice(0, at);
    const to = at < 0 ? '' : v.slice(at + 1);
    if (!HTTP_URL.test(from) || !HTTP_URL.test(to)) {
      throw new ConfigError(option, `must be FROM=TO, two http:// or https:// URLs (got ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)})`);
    }
    return option === '--url-map' ? { from, to } : { from, to, option };
  });
}

/**
 * The flags' rewrites, then `LOGSHIP_URL_MAP`'s (FROM=TO entries separated by whitespace, for a
 * container whose command line is fixed): for one FROM given both ways, the flag wins.
 */
export function urlMapOf(flags: string[] | undefined, env: NodeJS.ProcessEnv = process.env): UrlRewrite[] {
  const fromEnv = (env.LOGSHIP_URL_MAP ?? '').split(/\s+/).filter(Boolean);
  const given = parseUrlMap(flags);
  const flagged = new Set(given.map((r) => r.from));
  return [...given, ...parseUrlMap(fromEnv, 'LOGSHIP_URL_MAP').filter((r) => !flagged.has(r.from))];
}

/**
 * Rewrites every string of a parsed config that starts with a mapped prefix, as git's
 * `url.<base>.insteadOf` does: the longest matching FROM wins. A flow copied from Kestra (or from
 * production) keeps its endpoints as written while this run reaches them elsewhere: a tunnel, a
 * staging copy, a local test server. A FROM that matches nothing is refused, since a typo would
 * otherwise send the run to the endpoint it was meant to avoid.
 */
export function applyUrlMap(node: unknown, rewrites: readonly UrlRewrite[]): unknown {
  if (rewrites.length === 0) return node;
  const longestFirst = [...rewrites].sort((a, b) => b.from.length - a.from.length);
  const used = new Set<string>();
  const walk = (n: unknown): unknown => {
    if (typeof n === 'string') {
      const r = longestFirst.find((x) => n.startsWith(x.from));
      if (!r) return n;
      used.add(r.from);
      const kept = n.slice(r.from.length);
      const rewritten = r.to + kept;
      deriveFromSecret(n, rewritten, kept);
      return rewritten;
    }
    if (Array.isArray(n)) return n.map(walk);
    if (n && typeof n === 'object') return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, walk(v)]));
    return n;
  };
  const out = walk(node);
  const unused = rewrites.find((r) => !used.has(r.from));
  if (unused) throw new ConfigError(unused.option ?? '--url-map', `${unused.from} matches no URL in the config`);
  return out;
}
