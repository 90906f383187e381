import fs from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { isKestraFlow, kestraFlowToConfig } from './kestra.js';
import { parseConfig } from './schema.js';
import { defaultSecretSource, resolveSecrets, type SecretSource } from './secrets.js';
import type { Config } from './types.js';

export interface LoadOptions {
  task?: string;
  secrets?: SecretSource;
}

/** Parses YAML text (a native config or a whole Kestra flow) into a validated Config. */
export function loadConfigText(text: string, options: LoadOptions = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0];
    throw new ConfigError('', `config is not valid YAML${line ? ` (line ${line.line}, column ${line.col})` : ''}: ${e.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS();
  let native: unknown = raw;
  let prefix = '';
  if (isKestraFlow(raw)) {
    const mapped = kestraFlowToConfig(raw, options.task);
    native = mapped.config;
    prefix = mapped.pathPrefix;
  }
  try {
    return parseConfig(resolveSecrets(native, options.secrets ?? defaultSecretSource()));
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
