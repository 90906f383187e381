// Paths and ports that cannot work are found before anything is exported: one line naming the
// flag or option, exit 2, nothing written, the offset where it was. Before, a --report in a
// missing directory failed after the whole export (ENOENT, exit 1), a metrics port in use said
// "listen EADDRINUSE" (exit 1), and a read-only output directory was reported as ENOENT.
//
// A denied directory cannot be made by chmod here: tests run as root in CI, and root writes
// through permission bits. The OS-level cases use a path under a regular file (ENOTDIR), which
// no user can create. A read-only filesystem (EROFS) is a real tmpfs mounted read-only in a
// private mount namespace where the machine allows one (root, as CI runs); the wordings for it
// and for a permission refusal (EACCES) are also checked through writeProblem's access hook.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { writeProblem } from '../src/core/fs_checks.js';
import { loadConfigText } from '../src/config/load.js';
import { seedKestraLogs } from '../src/demo/seed.js';
import { FileService } from '../src/sinks/file/service.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { CLI, listParts, runCli, tempDir, writeConfig } from './helpers/cli.js';

let url: string;
let client: pg.Client;
let dir: string;
let n = 0;

beforeAll(async () => {
  ({ url, client } = await freshDatabase('preflight'));
  await seedKestraLogs(client, { rows: 200, start: isoAgo(2 * 3600), spanSeconds: 3600 });
  dir = tempDir('preflight');
  // A regular file where a directory would have to be: nothing can be created under it.
  fs.writeFileSync(path.join(dir, 'a-file'), 'not a directory');
});
afterAll(() => client.end());

function config(o: { state?: string; out?: string } = {}): { file: string; out: string; state: string } {
  const out = o.out ?? path.join(dir, `out-${++n}`);
  const state = o.state ?? path.join(dir, `state-${++n}.json`);
  const file = writeConfig(dir, {
    source: { url }, lookbackPeriod: 'P1D', workers: 1, state: { type: 'file', path: state },
    logExporters: [{ id: 'files', type: 'file', directory: out }],
  }, `cfg-${++n}.yaml`);
  return { file, out, state };
}

/** Nothing exported, no offset stored. */
function untouched(c: { out: string; state: string }): void {
  expect(listParts(c.out)).toEqual([]);
  expect(fs.existsSync(c.state) ? (JSON.parse(fs.readFileSync(c.state, 'utf8')) as { entries: Record<string, { offset: unknown }> }).entries['LogShipper-state']?.offset ?? null : null).toBeNull();
}

describe('run refuses before exporting, exit 2 and one line naming the flag or option', () => {
  it('--report in a directory that does not exist', async () => {
    const c = config();
    const missing = path.join(dir, 'no-such-dir');
    const r = await runCli(['run', '--config', c.file, '--report', path.join(missing, 'report.json')]);
    expect([r.code, r.stderr]).toEqual([2, `logship: --report: directory ${missing} does not exist\n`]);
    untouched(c);
  });

  it('a state file that cannot be created', async () => {
    const c = config({ state: path.join(dir, 'a-file', 'state', 'logship-state.json') });
    const r = await runCli(['run', '--config', c.file]);
    expect([r.code, r.stderr]).toEqual([2, `logship: state.path: cannot create ${path.join(dir, 'a-file', 'state')}: ${path.join(dir, 'a-file')} is a file, not a directory (ENOTDIR)\n`]);
    expect(listParts(c.out)).toEqual([]);
  });

  it('an output directory that cannot be created', async () => {
    const out = path.join(dir, 'a-file', 'out');
    const c = config({ out });
    const r = await runCli(['run', '--config', c.file]);
    expect([r.code, r.stderr]).toEqual([2, `logship: logExporters[0].directory: cannot create ${out}: ${path.join(dir, 'a-file')} is a file, not a directory (ENOTDIR)\n`]);
    untouched(c);
  });

  it('a --metrics-port another process listens on', async () => {
    const c = config();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const r = await runCli(['run', '--config', c.file, '--metrics-port', String(port)]);
      expect([r.code, r.stderr]).toEqual([2, `logship: --metrics-port: port ${port} is already in use by another process (EADDRINUSE); choose another, or 0 for any free port\n`]);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
    untouched(c);
  });

  it('the same config runs once the paths are fixed (the checks refuse only what cannot work)', async () => {
    const c = config({ out: path.join(dir, 'made', 'by', 'the', 'run') });
    const r = await runCli(['run', '--config', c.file, '--report', path.join(dir, 'report.json')]);
    expect(r.code).toBe(0);
    expect(listParts(c.out).length).toBeGreaterThan(0);
  });
});

/** A private mount namespace (root with CAP_SYS_ADMIN, as CI runs here) can hold a real read-only mount. */
const canMountReadOnly = process.platform === 'linux' && spawnSync('unshare', ['-m', 'true']).status === 0;

describe.runIf(canMountReadOnly)('on a real read-only filesystem (a tmpfs mounted ro in a private mount namespace)', () => {
  it('the state file and the output directory are refused naming EROFS, exit 2', () => {
    const ro = tempDir('preflight-rofs');
    const cases = [
      { cfg: config({ state: path.join(ro, 'state', 'logship-state.json') }), line: `logship: state.path: cannot create ${path.join(ro, 'state')}: ${ro} is on a read-only filesystem (EROFS)` },
      { cfg: config({ out: path.join(ro, 'out') }), line: `logship: logExporters[0].directory: cannot create ${path.join(ro, 'out')}: ${ro} is on a read-only filesystem (EROFS)` },
    ];
    for (const { cfg, line } of cases) {
      const script = `mount -t tmpfs -o ro tmpfs "$1" && exec "$2" "$3" run --config "$4"`;
      const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', ro, process.execPath, CLI, cfg.file], { encoding: 'utf8', timeout: 60_000 });
      expect([r.status, r.stderr]).toEqual([2, `${line}\n`]);
    }
  });
});

describe('what the checks say', () => {
  const failingAccess: (code: string) => (file: string) => void = (code) => (file) => {
    throw Object.assign(new Error(`${code}: ${file}`), { code });
  };

  it('names a read-only filesystem and a permission refusal as such, for a directory and for what creating one needs', () => {
    const existing = tempDir('preflight-ro');
    expect(writeProblem(existing, { create: true }, failingAccess('EROFS'))).toBe(`${existing} is on a read-only filesystem (EROFS)`);
    expect(writeProblem(path.join(existing, 'out'), { create: true }, failingAccess('EROFS'))).toBe(`cannot create ${path.join(existing, 'out')}: ${existing} is on a read-only filesystem (EROFS)`);
    expect(writeProblem(existing, { create: true }, failingAccess('EACCES'))).toBe(`${existing} is not writable by this user (EACCES)`);
    expect(writeProblem(path.join(existing, 'out'), { create: false })).toBe(`directory ${path.join(existing, 'out')} does not exist`);
    expect(writeProblem(path.join(existing, 'out', 'deeper'))).toBeNull();
  });

  it('a Kestra flow\'s option path points into the flow', () => {
    const text = `id: ship\nnamespace: company.team\ntasks:\n  - id: ship\n    type: io.kestra.plugin.ee.core.log.LogShipper\n    logExporters:\n      - id: files\n        type: io.kestra.plugin.ee.core.log.FileLogExporter\n        directory: ${path.join(dir, 'a-file', 'out')}\n`;
    expect(() => loadConfigText(text, { writes: { exporters: true, state: true } })).toThrow(`tasks[0].logExporters[0].directory: cannot create ${path.join(dir, 'a-file', 'out')}: ${path.join(dir, 'a-file')} is a file, not a directory (ENOTDIR)`);
    // Commands that write nothing there (plan, status) are not refused for it.
    expect(() => loadConfigText(text)).not.toThrow();
  });

  it('the file exporter\'s own check (for a directory that went bad after the preflight) names the cause in words', async () => {
    const out = path.join(dir, 'a-file', 'late');
    await expect(new FileService('files', out).check()).rejects.toThrow(`logExporters 'files': directory ${out} is not writable: cannot create ${out}: ${path.join(dir, 'a-file')} is a file, not a directory (ENOTDIR)`);
  });
});
