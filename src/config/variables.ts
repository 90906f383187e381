import { ConfigError } from '../core/errors.js';

const VAR_EXPR = /\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
const SECRET_EXPR = /\{\{\s*secret\(\s*(['"])[A-Za-z0-9_.\-]+\1\s*\)\s*\}\}/g;
const ANY_EXPR = /\{\{.*?\}\}/;

/**
 * Where `{{ vars.NAME }}` looks, in order: the flow's own `variables:` map, then `--var
 * NAME=VALUE` from the command line, then the environment variable `LOGSHIP_VAR_NAME`.
 */
export interface VariableSource {
  flow: Record<string, unknown>;
  cli: Record<string, string>;
  env: NodeJS.ProcessEnv;
}

export function emptyVariables(env: NodeJS.ProcessEnv = process.env): VariableSource {
  return { flow: {}, cli: {}, env };
}

function lookup(name: string, source: VariableSource): string | undefined {
  const fromFlow = source.flow[name];
  if (fromFlow !== undefined && fromFlow !== null) return typeof fromFlow === 'string' ? fromFlow : JSON.stringify(fromFlow);
  if (source.cli[name] !== undefined) return source.cli[name];
  return source.env[`LOGSHIP_VAR_${name}`];
}

/**
 * Replaces `{{ vars.NAME }}` in every string of a parsed config tree. A variable's value may
 * itself hold `{{ secret('X') }}`, which the secrets pass resolves (and redacts) afterwards. Any
 * other Kestra expression (`{{ now() }}`, `{{ outputs.x }}`) has no meaning outside Kestra and is
 * refused, naming the option.
 */
export function resolveVariables(node: unknown, source: VariableSource, at = ''): unknown {
  if (typeof node === 'string') {
    const replaced = node.replace(VAR_EXPR, (_m, name: string) => {
      const value = lookup(name, source);
      if (value === undefined) {
        throw new ConfigError(at, `variable '${name}' is not defined: add it to the flow's variables, pass --var ${name}=VALUE or set LOGSHIP_VAR_${name}`);
      }
      if (/\{\{\s*vars\./.test(value)) throw new ConfigError(at, `variable '${name}' refers to another variable, which logship does not expand`);
      return value;
    });
    const other = ANY_EXPR.exec(replaced.replace(SECRET_EXPR, ''));
    if (other) {
      throw new ConfigError(at, `the Kestra expression ${other[0]} is not supported outside Kestra (logship supports {{ secret('NAME') }} and {{ vars.NAME }})`);
    }
    return replaced;
  }
  if (Array.isArray(node)) return node.map((v, i) => resolveVariables(v, source, `${at}[${i}]`));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = resolveVariables(v, source, at ? `${at}.${k}` : k);
    return out;
  }
  return node;
}

/** `--var NAME=VALUE`, repeatable. */
export function parseCliVariables(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
    if (!m) throw new ConfigError('--var', `must be NAME=VALUE (got ${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)})`);
    out[m[1]!] = m[2]!;
  }
  return out;
}
