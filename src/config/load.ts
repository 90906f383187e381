import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { isKestraFlow, kestraFlowToConfig } from './kestra.js';
import { parseConfig } from './schema.js';
import { defaultSecretSource, resolveSecrets, type SecretSource } from './secrets.js';
import { emptyVariables, resolveVariables, type VariableSource } from './variables.js';
import type { Config } from './types.js';

export interface LoadOptions {
  task?: string;
  secrets?: SecretSource;
  /** `--var NAME=VALUE` values for `{{ vars.NAME }}`. */
  variables?: Record<string, string>;
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

/** Parses YAML text (a native config or a whole Kestra flow) into a validated Config. */
export function loadConfigText(text: string, options: LoadOptions = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0];
    throw new ConfigError('', `config is not valid YAML${line ? ` (line ${line.line}, column ${line.col})` : ''}: ${e.message.split('\n')[0]!.replace(/:$/, '')}${yamlHint(text)}`);
  }
  const raw: unknown = doc.toJS();
  let native: unknown = raw;
  let prefix = '';
  const variables: VariableSource = { ...emptyVariables(options.secrets?.env ?? process.env), cli: options.variables ?? {} };
  if (isKestraFlow(raw)) {
    const mapped = kestraFlowToConfig(raw, options.task);
    native = mapped.config;
    prefix = mapped.pathPrefix;
    const flowVars = raw.variables;
    if (flowVars && typeof flowVars === 'object' && !Array.isArray(flowVars)) variables.flow = flowVars as Record<string, unknown>;
  }
  try {
    const secrets = options.secrets ?? defaultSecretSource();
    // Variables first: a variable's value may hold {{ secret('X') }}, resolved and redacted next.
    return parseConfig(resolveSecrets(resolveVariables(native, variables), secrets));
  } catch (err) {
    // Point errors from a Kestra flow at the task's own location in the file.
    if (prefix && err instanceof ConfigError && err.path) {
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
  return loadConfigText(text, options);
}
