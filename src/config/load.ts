import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, errorMessage } from '../core/errors.js';
import { describe } from '../core/options.js';
import { checkWritePlaces, type WritePlaces } from './write_places.js';
import { isKestraFlow, kestraFlowToConfig } from './kestra.js';
import { parseConfig } from './schema.js';
import { defaultSecretSource, resolveSecrets, type SecretSource } from '../core/secrets.js';
import { applyUrlMap, type UrlRewrite } from './url_map.js';
import { emptyVariables, resolveVariables, type VariableSource } from './variables.js';
import type { Config } from '../shard/config.js';

export interface LoadOptions {
  task?: string;
  secrets?: SecretSource;
  /** `--var NAME=VALUE` values for `{{ vars.NAME }}`. */
  variables?: Record<string, string>;
  /** `--url-map FROM=TO` rewrites, applied after variables and secrets. */
  urlMap?: UrlRewrite[];
  /** A command that writes: check that the places it writes in can take files (checkWritePlaces). */
  writes?: WritePlaces;
}

/**
 * Kestra's own Splunk example nests `tasks:` under `triggers:` (invalid as published); say so,
 * since "bad indentation" alone sends people hunting.
 */
function yamlHint(text: string): string {
  const triggers = /^triggers:\s*$/m.exec(text);
  if (triggers && /^[ \t]+tasks:\s*$/m.test(text.slice(triggers.index))) return '; hint: `tasks:` is indented under `triggers:`; move it to the top level of the flow';
  return '';
}

/**
 * Parses YAML text (a native config or a whole Kestra flow) into a validated Config. `origin`
 * names the file in errors about the document as a whole, which have no option path.
 */
export function loadConfigText(text: string, options: LoadOptions = {}, origin = 'config'): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0];
    throw new ConfigError(origin, `not valid YAML${line ? ` (line ${line.line}, column ${line.col})` : ''}: ${e.message.split('\n')[0]!.replace(/:$/, '').replace(/ at line \d+, column \d+$/, '')}${yamlHint(text)}`);
  }
  let raw: unknown;
  try {
    // yaml refuses alias expansion past a limit ("Excessive alias count"): a billion-laughs file.
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(origin, `not a usable YAML document: ${errorMessage(err).split('\n')[0]}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(origin, `must be a mapping of options (got ${raw === null || raw === undefined ? 'an empty document' : describe(raw)})`);
  }
  let native: unknown = raw;
  let prefix = '';
  const variables: VariableSource = { ...emptyVariables(options.secrets?.env ?? process.env), cli: options.variables ?? {} };
  if (isKestraFlow(raw)) {
    const mapped = kestraFlowToConfig(raw, options.task);
    native = mapped.config;
    prefix = mapped.pathPrefix;
    const flowVars = raw.variables;
    if (flowVars && typeof flowVars === 'object' && !Array.isArray(flowVars)) variables.flow = flowVars as Record<string, unknown>;
  } else if (options.task !== undefined) {
    throw new ConfigError('--task', `applies only to a Kestra flow; ${origin} is a logship config (it has no tasks list)`);
  }
  try {
    const secrets = options.secrets ?? defaultSecretSource();
    // Variables first: a variable's value may hold {{ secret('X') }}, resolved and redacted next.
    const config = parseConfig(applyUrlMap(resolveSecrets(resolveVariables(native, variables), secrets), options.urlMap ?? []));
    if (options.writes) checkWritePlaces(config, options.writes);
    return config;
  } catch (err) {
    // Point errors from a Kestra flow at the task's own location in the file (not those of a
    // command-line flag or an environment variable such as LOGSHIP_URL_MAP).
    if (prefix && err instanceof ConfigError && err.path && !err.path.startsWith('--') && !/^[A-Z][A-Z0-9_]*$/.test(err.path)) {
      throw new ConfigError(`${prefix}.${err.path}`, err.message.slice(err.path.length + 2));
    }
    throw err;
  }
}

export function loadConfigFile(file: string, options: LoadOptions = {}): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return loadConfigText(text, options, file);
}
