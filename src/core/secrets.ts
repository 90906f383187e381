import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';

const SECRET_EXPR = /\{\{\s*secret\(\s*(['"])([A-Za-z0-9_.\-]+)\1\s*\)\s*\}\}/g;
const ANY_EXPR = /\{\{.*?\}\}/;

/**
 * Every secret value resolved so far. Logs, errors and reports pass through `redact`, so a
 * secret cannot leak even when a library echoes it back (an auth error quoting a URL, say).
 */
const knownSecrets = new Set<string>();

/** Config strings that had a secret substituted into them: never quoted back in any message,
 *  not even redacted (`https://user:***@host` still echoes the rest of a secret's neighbourhood,
 *  and a short secret is not in knownSecrets at all). */
const secretBearing = new Set<string>();

export function cameFromSecret(value: string): boolean {
  return secretBearing.has(value);
}

/**
 * A config string rewritten from a secret-bearing one (by `--url-map`) is as secret as its source:
 * the part of the secret it kept is redacted too.
 */
export function deriveFromSecret(original: string, derived: string, keptPart: string): void {
  if (!secretBearing.has(original)) return;
  secretBearing.add(derived);
  registerSecret(keptPart);
}

export function registerSecret(value: string): void {
  // Very short values would redact ordinary words; nobody uses a 1-3 char secret.
  if (value.length >= 4) knownSecrets.add(value);
}

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/\s]+)(@)/gi;

export function redact(text: string): string {
  let out = text.replace(URL_PASSWORD, '$1***$3');
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join('***');
  }
  return out;
}

export interface SecretSource {
  env: NodeJS.ProcessEnv;
  secretsDir: string | undefined;
}

export function defaultSecretSource(): SecretSource {
  return { env: process.env, secretsDir: process.env.LOGSHIP_SECRETS_DIR };
}

function lookupSecret(name: string, source: SecretSource): string | undefined {
  const fromEnv = source.env[name];
  if (fromEnv !== undefined) return fromEnv;
  if (source.secretsDir) {
    const file = path.join(source.secretsDir, name);
    try {
      // A trailing newline is an artefact of `echo > file`, never part of the secret.
      return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Replaces `{{ secret('NAME') }}` in every string of a parsed config tree. */
export function resolveSecrets(node: unknown, source: SecretSource, at = ''): unknown {
  if (typeof node === 'string') {
    const replaced = node.replace(SECRET_EXPR, (_m, _q, name: string) => {
      const value = lookupSecret(name, source);
      if (value === undefined) {
        const where = source.secretsDir ? ` or file ${path.join(source.secretsDir, name)}` : ' (or set LOGSHIP_SECRETS_DIR to a directory holding a file of that name)';
        throw new ConfigError(at, `secret '${name}' is not set: define environment variable ${name}${where}`);
      }
      registerSecret(value);
      return value;
    });
    if (replaced !== node) secretBearing.add(replaced);
    if (ANY_EXPR.test(node.replace(SECRET_EXPR, ''))) {
      throw new ConfigError(at, `only {{ secret('NAME') }} expressions are supported in logship config (got ${JSON.stringify(node)})`);
    }
    return replaced;
  }
  if (Array.isArray(node)) return node.map((v, i) => resolveSecrets(v, source, `${at}[${i}]`));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = resolveSecrets(v, source, at ? `${at}.${k}` : k);
    return out;
  }
  return node;
}
