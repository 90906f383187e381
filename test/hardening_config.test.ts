// Adversarial configs: each must fail at load time with one line that names the option (exit 2
// in the CLI), and never echo a value that came from a secret.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigFile, loadConfigText } from '../src/config/load.js';
import { quote } from '../src/core/options.js';
import { registerSecret } from '../src/core/secrets.js';
import { FileService } from '../src/sinks/file/service.js';

const noSecrets = { env: {}, secretsDir: undefined };

function errorOf(config: unknown, env: Record<string, string> = {}): string {
  const text = typeof config === 'string' ? config : YAML.stringify(config);
  try {
    loadConfigText(text, { secrets: { env, secretsDir: undefined } });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    return message;
  }
  throw new Error('expected a ConfigError');
}

const file = (extra: Record<string, unknown>) => ({ logExporters: [{ id: 'a', type: 'file', directory: os.tmpdir(), ...extra }] });
const s3 = (extra: Record<string, unknown>) => ({ logExporters: [{ id: 'a', type: 's3', bucket: 'b', ...extra }] });
const template = '{prefix}-{shard}-{part}.{ext}';

describe('names that would leave the output directory or bucket', () => {
  it.each<[string, unknown, string]>([
    ['a keyTemplate climbing out with ../..', file({ keyTemplate: `../../escaped/${template}` }), 'logExporters[0].keyTemplate: must keep every name inside the output directory: a rendered name has a ".." segment'],
    ['a keyTemplate with a ".." in the middle', file({ keyTemplate: `sub/../../${template}` }), 'logExporters[0].keyTemplate: must keep every name inside the output directory: a rendered name has a ".." segment'],
    ['a logFilePrefix climbing out', file({ logFilePrefix: '../../x' }), 'logExporters[0].logFilePrefix: must keep every name inside the output directory: a rendered name has a ".." segment'],
    ['a logFilePrefix of ".." under a {prefix}/ template', file({ logFilePrefix: '..', keyTemplate: `{prefix}/${template}` }), 'logExporters[0].logFilePrefix: must keep every name inside the output directory: a rendered name has a ".." segment'],
    ['an exporter id of ".." under {exporter}/', { logExporters: [{ id: '..', type: 'file', directory: os.tmpdir(), keyTemplate: `{exporter}/${template}` }] }, 'logExporters[0].id: must keep every name inside the output directory: a rendered name has a ".." segment'],
    ['an absolute S3 key', s3({ keyTemplate: `/${template}` }), 'logExporters[0].keyTemplate: must keep every name inside the bucket: a rendered name has an empty segment (a leading, trailing or double "/")'],
    ['the default S3 template with a prefix that climbs', s3({ logFilePrefix: '../other-team' }), 'logExporters[0].logFilePrefix: must keep every name inside the bucket: a rendered name has a ".." segment'],
    ['a "." segment in a GCS key', { logExporters: [{ id: 'a', type: 'gcs', bucket: 'b', keyTemplate: `./${template}` }] }, 'logExporters[0].keyTemplate: must keep every name inside the bucket: a rendered name has a "." segment'],
    ['an Azure prefix climbing out of the container', { logExporters: [{ id: 'a', type: 'azure-blob', containerName: 'c', connectionString: 'UseDevelopmentStorage=true', logFilePrefix: 'a/../..' }] }, 'logExporters[0].logFilePrefix: must keep every name inside the container: a rendered name has a ".." segment'],
    ['a control character in a name', file({ logFilePrefix: 'a\u0000b' }), 'logExporters[0].logFilePrefix: must keep every name inside the output directory: a rendered name has a control character'],
  ])('refuses %s', (_what, config, message) => {
    expect(errorOf(config)).toBe(message);
  });

  it.each<[string, string, string]>([
    ['an index name with a "/" that would address another endpoint', 'logs/../_all', 'logExporters[0].indexName: index names may not contain "/" (nor \\ / * ? " < > | space , # :)'],
    ['a date pattern with "/" separators', 'kestra-{yyyy/MM/dd}', 'logExporters[0].indexName: index names may not contain "/" (nor \\ / * ? " < > | space , # :)'],
    ['an index name starting with "_"', '_all', 'logExporters[0].indexName: index names may not start with -, _ or +'],
    ['an index name of ".."', '..', 'logExporters[0].indexName: index names may not be . or ..'],
  ])('refuses %s (every document would be dead-lettered)', (_what, indexName, message) => {
    expect(errorOf({ logExporters: [{ id: 'es', type: 'elasticsearch', indexName, connection: { hosts: ['http://h:9200'] } }] })).toBe(message);
  });

  it('the rerun cleanup refuses to list or delete outside its root even if handed such a prefix', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-root-'));
    const outside = path.join(path.dirname(root), `${path.basename(root)}-victim-shard-00001.ndjson.gz`);
    fs.writeFileSync(outside, 'not logship\'s');
    const service = new FileService('files', root);
    await expect(service.removeStale([`../${path.basename(root)}-victim-shard-`], new Set(), /.*/)).rejects.toThrow(/outside the output directory/);
    expect(fs.readFileSync(outside, 'utf8')).toBe('not logship\'s');
    await expect(service.open('../escaped.ndjson')).rejects.toThrow(/outside the output directory/);
  });
});

describe('a config that would silently export nothing', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['lookbackPeriod PT10S under the default safetyLag PT30S', { lookbackPeriod: 'PT10S' }, 'lookbackPeriod: must be longer than safetyLag (PT10S is not longer than PT30S; the first window would be empty on every run)'],
    ['a lookbackPeriod equal to the safetyLag', { lookbackPeriod: 'PT30S' }, 'lookbackPeriod: must be longer than safetyLag (PT30S is not longer than PT30S; the first window would be empty on every run)'],
    ['a safetyLag of two days under a one-day lookback', { lookbackPeriod: 'P1D', safetyLag: 'P2D' }, 'lookbackPeriod: must be longer than safetyLag (P1D is not longer than P2D; the first window would be empty on every run)'],
  ])('refuses %s', (_what, top, message) => {
    expect(errorOf({ ...top, ...file({}) })).toBe(message);
  });
});

describe('secrets are never echoed, not even cut short', () => {
  const long = 'S3cr3t-' + 'x'.repeat(40) + '-TAIL-0123456789';
  const pieces = (s: string) => Array.from({ length: s.length - 7 }, (_, i) => s.slice(i, i + 8));

  it('an Elasticsearch host with a secret password and a misspelt scheme', () => {
    const m = errorOf({ logExporters: [{ id: 'es', type: 'elasticsearch', indexName: 'logs', connection: { hosts: ["htps://user:{{ secret('P') }}@host:9200"] } }] }, { P: long });
    expect(m).toBe('logExporters[0].connection.hosts[0]: must be an http:// or https:// URL (got a value from a secret)');
    for (const piece of pieces(long)) expect(m).not.toContain(piece);
  });

  it('a whole option that is a secret and not a valid choice', () => {
    const m = errorOf(file({ compression: "{{ secret('LONG') }}" }), { LONG: long });
    expect(m).toBe('logExporters[0].compression: must be one of gzip, zstd, none (got a value from a secret)');
  });

  it('a short secret (below the redaction length) in a bad duration', () => {
    const m = errorOf({ lookbackPeriod: "{{ secret('D') }}", ...file({}) }, { D: 'P1' });
    expect(m).toBe('lookbackPeriod: must be an ISO-8601 duration such as P1D or PT30S (got a value from a secret)');
  });

  it('redacts a known secret inside any quoted value before shortening it', () => {
    registerSecret(long);
    const quoted = quote(`prefix-${long}-suffix`);
    for (const piece of pieces(long)) expect(quoted).not.toContain(piece);
    expect(quoted).toBe('"prefix-***-suffix"');
  });

  it.each([
    ['a "/" (as in base64)', 'postgres://logship:ab/cd+ef==@db.internal:5432/kestra'],
    ['a "#"', 'postgres://logship:ab#cd@db.internal:5432/kestra'],
    ['a "?"', 'postgres://logship:ab?cd@db.internal:5432/kestra'],
    ['digits then "/" (which parses as a port and a path)', 'postgres://logship:123/45@db.internal/kestra'],
  ])('a password with %s pasted into source.url', (_what, url) => {
    expect(errorOf({ source: { url }, ...file({}) })).toBe('source.url: not a valid URL (percent-encode the password)');
  });

  it('the same when the password comes from a secret, which is not echoed', () => {
    const m = errorOf({ source: { url: "postgres://logship:{{ secret('PW') }}@db.internal/kestra" }, ...file({}) }, { PW: 'Zm9v/YmFy+cXV4==' });
    expect(m).toBe('source.url: not a valid URL (percent-encode the password)');
  });

  it('source.password is accepted beside a URL without one, and refused beside a URL with one', () => {
    const ok = loadConfigText(YAML.stringify({ source: { url: 'postgres://logship@db.internal/kestra', password: "{{ secret('PW') }}" }, ...file({}) }), { secrets: { env: { PW: 'a/b#c?d@e' }, secretsDir: undefined } });
    expect(ok.source.password).toBe('a/b#c?d@e');
    expect(errorOf({ source: { url: 'postgres://logship:x@db.internal/kestra', password: 'y' }, ...file({}) })).toBe('source.password: source.url already has a password; give it in one place');
  });
});

describe('paths that cannot hold files fail fast', () => {
  it.each<[string, unknown, RegExp]>([
    ['an output directory under /proc', file({ directory: '/proc/self/logship-out' }), /^logExporters\[0\]\.directory: is under \/proc, a kernel filesystem where files cannot be created \(got "\/proc\/self\/logship-out"\)$/],
    ['an output directory under /sys', file({ directory: '/sys/kernel/out' }), /^logExporters\[0\]\.directory: is under \/sys, /],
    ['a dead-letter directory under /proc', { logExporters: [{ id: 'es', type: 'elasticsearch', indexName: 'logs', deadLetter: '/proc/dead', connection: { hosts: ['http://h:9200'] } }] }, /^logExporters\[0\]\.deadLetter: is under \/proc, /],
    ['a state file under /proc', { state: { type: 'file', path: '/proc/state.json' }, ...file({}) }, /^state\.path: is under \/proc, /],
    ['a state file that is a directory', { state: { type: 'file', path: os.tmpdir() }, ...file({}) }, /^state\.path: is a directory; give a file path such as ".*logship-state\.json"$/],
    ['an output directory that is a file', file({ directory: fs.realpathSync(process.execPath) }), /^logExporters\[0\]\.directory: is not a directory \(got ".*"\)$/],
  ])('refuses %s', (_what, config, message) => {
    expect(errorOf(config)).toMatch(message);
  });
});

describe('config files that are not a config', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-cfg-'));
  const load = (name: string, text: string, task?: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    try {
      loadConfigFile(f, { secrets: noSecrets, task });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message.replace(dir, 'DIR');
    }
    throw new Error('expected a ConfigError');
  };
  it.each([
    ['an empty file', 'empty.yaml', '', 'DIR/empty.yaml: must be a mapping of options (got an empty document)'],
    ['a comment-only file', 'comment.yaml', '# nothing here\n', 'DIR/comment.yaml: must be a mapping of options (got an empty document)'],
    ['a list', 'list.yaml', '- a\n- b\n', 'DIR/list.yaml: must be a mapping of options (got a list)'],
    ['a scalar', 'scalar.yaml', 'just text\n', 'DIR/scalar.yaml: must be a mapping of options (got "just text")'],
  ])('names the file for %s', (_what, name, text, message) => {
    expect(load(name, text)).toBe(message);
  });

  it('a YAML alias bomb is refused as a config error naming the file', () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');
    expect(load('bomb.yaml', bomb)).toMatch(/^DIR\/bomb\.yaml: not a usable YAML document: Excessive alias count/);
  });

  it('--task on a logship (non-Kestra) config is refused, not ignored', () => {
    expect(load('native.yaml', YAML.stringify(file({})), 'ship')).toBe('--task: applies only to a Kestra flow; DIR/native.yaml is a logship config (it has no tasks list)');
  });
});
