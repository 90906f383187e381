// Adversarial runs through the CLI against a real PostgreSQL: exit codes a scheduler can act on,
// one-line errors naming the option, nothing written where it must not be.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { seedKestraLogs } from '../src/demo/seed.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { exportedDocs, runCli, tempDir, writeConfig } from './helpers/cli.js';
import { startS3, type Running } from './helpers/object_servers.js';

let url: string;
let client: pg.Client;
let dir: string;
let n = 0;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('hardening'));
  await seedKestraLogs(client, { rows: 300, start: isoAgo(2 * 3600), spanSeconds: 3600 });
  dir = tempDir('hardening');
});
afterAll(() => client.end());

function config(top: Record<string, unknown> = {}, exporter: Record<string, unknown> = {}): { file: string; out: string; state: string } {
  const out = path.join(dir, `out-${++n}`);
  const state = path.join(dir, `state-${n}.json`);
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 1, state: { type: 'file', path: state }, ...top,
    logExporters: [{ id: 'files', type: 'file', directory: out, ...exporter }],
  }, `cfg-${n}.yaml`);
  return { file, out, state };
}
const logshipLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('logship:'));
const readYaml = (file: string) => parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('exit 2, one line naming the option', () => {
  it('a keyTemplate that climbs out of the directory writes nothing anywhere', async () => {
    const { file, out } = config({}, { keyTemplate: '../../escaped/{prefix}-{shard}-{part}.{ext}' });
    const r = await runCli(['run', '--config', file]);
    expect(r).toMatchObject({ code: 2, stderr: 'logship: logExporters[0].keyTemplate: must keep every name inside the output directory: a rendered name has a ".." segment\n' });
    expect(fs.existsSync(path.join(out, '../../escaped'))).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('lookbackPeriod PT10S under the default safetyLag', async () => {
    const r = await runCli(['run', '--config', config({ lookbackPeriod: 'PT10S' }).file]);
    expect(r).toMatchObject({ code: 2, stderr: 'logship: lookbackPeriod: must be longer than safetyLag (PT10S is not longer than PT30S; the first window would be empty on every run)\n' });
  });

  it.each([
    ['lookbackPeriod P9999999Y (past the timestamp range)', { lookbackPeriod: 'P9999999Y' }, "logship: lookbackPeriod: P9999999Y reaches outside PostgreSQL's timestamp range (now() - lookbackPeriod must be after year 1)\n"],
    ['lookbackPeriod P3000Y (into the BC era)', { lookbackPeriod: 'P3000Y' }, 'logship: lookbackPeriod: P3000Y reaches before year 1 (windows start after year 1; BC timestamps would lose their era)\n'],
    ['safetyLag P3000Y (a window ending BC)', { lookbackPeriod: 'P4000Y', safetyLag: 'P3000Y' }, 'logship: safetyLag: P3000Y reaches before year 1 (now() - safetyLag must be after year 1)\n'],
  ])('%s, in run and in plan', async (_what, top, stderr) => {
    const { file, state } = config(top);
    for (const command of ['run', 'plan']) expect(await runCli([command, '--config', file])).toMatchObject({ code: 2, stderr });
    expect(fs.existsSync(state)).toBe(false);
  });

  it('a state file that is a directory', async () => {
    const r = await runCli(['run', '--config', config({ state: { type: 'file', path: dir } }).file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^logship: state\.path: is a directory; give a file path such as ".*logship-state\.json"\n$/);
  });

  it('a --report path that is a directory is refused before the run, not after it', async () => {
    const { file, state } = config();
    const r = await runCli(['run', '--config', file, '--report', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^logship: --report: is a directory; give a file path such as ".*logship-report\.json"\n$/);
    expect(fs.existsSync(state)).toBe(false);
  });

  it('a directory under /proc fails fast instead of spinning in mkdir', async () => {
    const r = await runCli(['run', '--config', config({}, { directory: '/proc/self/logs' }).file]);
    expect(r).toMatchObject({ code: 2, stderr: 'logship: logExporters[0].directory: is under /proc, a kernel filesystem where files cannot be created (got "/proc/self/logs")\n' });
  });

  it('an unquoted mixed-case or spaced table name gets a quoting hint', async () => {
    await client.query(`CREATE TABLE "MyLogs" (LIKE logs INCLUDING ALL); CREATE TABLE "my logs" (LIKE logs INCLUDING ALL)`);
    const mixed = await runCli(['plan', '--config', config({ source: { url, table: 'MyLogs' } }).file]);
    expect(mixed).toMatchObject({ code: 2, stderr: `logship: source.table: table "MyLogs" not found in the source database (unquoted names are folded to lower case; to use the existing table write table: 'public."MyLogs"')\n` });
    const spaced = await runCli(['plan', '--config', config({ source: { url, table: 'my logs' } }).file]);
    expect(spaced).toMatchObject({ code: 2, stderr: `logship: source.table: table "my logs" not found in the source database (unquoted names are folded to lower case; to use the existing table write table: 'public."my logs"')\n` });
    const quoted = await runCli(['plan', '--config', config({ source: { url, table: '"MyLogs"' } }).file]);
    expect(quoted.code).toBe(0);
  });

  it('usage errors print the error and one "see logship --help" line (the command\'s help, once the command is known)', async () => {
    expect(await runCli(['run', '--bogus'])).toMatchObject({ code: 2, stderr: "logship: Unknown option '--bogus'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- \"--bogus\"\nsee logship --help\n" });
    expect(await runCli(['run', 'extra', '--config', 'x.yaml'])).toMatchObject({ code: 2, stderr: 'logship: unexpected argument "extra"\nsee logship run --help\n' });
  });

  it('a flag the command does not read is refused, not ignored', async () => {
    const { file } = config();
    expect(await runCli(['plan', '--config', file, '--reset'])).toMatchObject({ code: 2, stderr: 'logship: --reset does not apply to plan\nsee logship plan --help\n' });
    expect(await runCli(['run', '--config', file, '--json'])).toMatchObject({ code: 2, stderr: 'logship: --json does not apply to run\nsee logship run --help\n' });
  });

  it('--task on a non-Kestra config', async () => {
    const { file } = config();
    expect(await runCli(['run', '--config', file, '--task', 'ship'])).toMatchObject({ code: 2, stderr: `logship: --task: applies only to a Kestra flow; ${file} is a logship config (it has no tasks list)\n` });
  });
});

describe('plan says why a window is empty', () => {
  it('when the stored offset is within the safety lag of now', async () => {
    const { file, state } = config({ safetyLag: 'PT1H' });
    expect((await runCli(['run', '--config', file])).code).toBe(0);
    const later = writeConfig(dir, { ...readYaml(file), safetyLag: 'PT2H' }, `cfg-${n}-lag.yaml`);
    const r = await runCli(['plan', '--config', later]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^window: empty: the stored offset \S+ is not before now\(\) - safetyLag PT2H \(\S+\): nothing has aged past the safety lag since the last run$/m);
    const json = JSON.parse((await runCli(['plan', '--config', later, '--json'])).stdout);
    expect(json.window).toBeNull();
    expect(json.emptyWindowReason).toMatch(/^the stored offset /);
    expect(fs.existsSync(state)).toBe(true);
  });
});


describe('exit codes a scheduler can act on', () => {
  it('a database that refuses connections at startup exits 4 (source unavailable), not 2', async () => {
    const r = await runCli(['run', '--config', config({ source: { url: 'postgres://logship@127.0.0.1:1/kestra' } }).file]);
    expect(r).toMatchObject({ code: 4, stderr: 'logship: source.url: cannot connect to postgres://127.0.0.1:1/kestra: connection refused (is the server running and the port right?)\n' });
  });

  it('a pasted Kestra flow with no database settings says where a source URL goes (LOGSHIP_SOURCE_URL), not only that localhost refused', async () => {
    const flow = writeConfig(dir, [
      'id: ship', 'namespace: company.team', 'tasks:', '  - id: ship', '    type: io.kestra.plugin.ee.core.log.LogShipper',
      '    logExporters:', '      - id: files', '        type: io.kestra.plugin.ee.core.log.FileLogExporter', `        directory: ${path.join(dir, 'flow-out')}`, '',
    ].join('\n'), 'pasted-flow.yaml');
    // libpq's defaults, pointed at a port where nothing listens (5432 may hold someone's server);
    // an undefined variable is left out of the child's environment.
    const r = await runCli(['run', '--config', flow], { env: { PGHOST: '127.0.0.1', PGPORT: '1', LOGSHIP_SOURCE_URL: undefined as unknown as string } });
    expect(r).toMatchObject({
      code: 4,
      stderr: 'logship: source.url: cannot connect to PostgreSQL from PG* environment (host 127.0.0.1, port 1): connection refused (is the server running and the port right?); no source URL is set: give one in LOGSHIP_SOURCE_URL (a Kestra flow has no database settings) or in source.url, e.g. postgres://USER@HOST:5432/kestra\n',
    });
  });

  it('a role with fewer connections than workers + 1: workers are capped with a warning and every row is exported', async () => {
    const role = `limited_${process.pid}`;
    // A generated-style password with / # ? @, given as source.password so nobody percent-encodes it.
    const password = 'Zm9v/YmFy#cXV4?@==';
    await client.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2 PASSWORD '${password}'`);
    await client.query(`GRANT SELECT ON logs TO ${role}`);
    const bare = url.replace(/\/\/[^@]+@/, `//${role}@`);
    const { file, out } = config({ source: { url: bare, password: "{{ secret('LIMITED_PW') }}" }, workers: 4, rowsPerShard: 1000 });
    const r = await runCli(['run', '--config', file], { env: { LIMITED_PW: password } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('workers capped from 4 to 1 by the role\'s connection limit (rolconnlimit 2, 1 in use)');
    expect(r.stderr).not.toContain(password);
    expect(exportedDocs(out)).toEqual(await sourceDocs(client));
    // The same role with the postgres state store, where it may not create tables (PostgreSQL 15+
    // grants no CREATE on public): a config error naming state.table, not a raw SQL error.
    const noCreate = await runCli(['run', '--config', config({ source: { url: bare, password: password }, state: { type: 'postgres', table: 'limited_state' } }).file]);
    expect(noCreate.code).toBe(2);
    expect(logshipLines(noCreate.stderr)).toEqual([expect.stringMatching(/^logship: state\.table: cannot create limited_state in the source database: permission denied for schema public \(grant CREATE/)]);
    // The same password pasted into the URL is refused before any connection is tried.
    const pasted = await runCli(['run', '--config', config({ source: { url: bare.replace(`${role}@`, `${role}:${password}@`) } }).file]);
    expect(pasted).toMatchObject({ code: 2, stderr: 'logship: source.url: not a valid URL (percent-encode the password)\n' });
  });
});

describe('stderr stays JSON lines', () => {
  let s3: Running;
  beforeAll(async () => {
    s3 = await startS3(['hardening']);
  });
  afterAll(() => s3.stop());

  it('an S3 run on Node 20 prints no AWS NodeVersionSupportWarning', async () => {
    const { file } = config({ workers: 1 }, {});
    const s3file = writeConfig(dir, {
      ...readYaml(file),
      logExporters: [{ id: 's3', type: 's3', bucket: 'hardening', endpoint: s3.endpoint, accessKeyId: 'S3RVER', secretKeyId: 'S3RVER', region: 'us-east-1' }],
    }, 's3.yaml');
    const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined } as unknown as Record<string, string>;
    const r = await runCli(['run', '--config', s3file], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('NodeVersionSupportWarning');
    for (const line of r.stderr.split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
  });
});
