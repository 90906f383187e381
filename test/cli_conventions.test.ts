import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { plural } from '../src/core/format.js';
import { COMMAND_FLAGS, commandUsage, COMMAND_USAGE, generalUsage } from '../src/cli/usage.js';
import { runCli } from './helpers/cli.js';

const version = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('the usage text', () => {
  it.each(Object.keys(COMMAND_FLAGS))('%s --help shows its own usage lines and every flag it takes, and no other command\'s', (command) => {
    const text = commandUsage(command);
    expect(text.startsWith(`usage:\n  logship ${command} `)).toBe(true);
    for (const flag of COMMAND_FLAGS[command]!) expect(text, `--${flag}`).toMatch(new RegExp(`--${flag}\\b`));
    for (const other of Object.keys(COMMAND_USAGE).filter((c) => c !== command)) expect(text).not.toMatch(new RegExp(`^ {2}logship ${other} `, 'm'));
  });

  it('the general usage lists every command and --version', () => {
    const text = generalUsage();
    for (const command of Object.keys(COMMAND_FLAGS)) expect(text).toMatch(new RegExp(`^ {2}logship ${command} +`, 'm'));
    expect(text).toContain('logship --version');
    expect(text).toContain('`logship COMMAND --help`');
  });

  it('counts read "1 shard", "2 shards", "1,200 rows", "1 index"', () => {
    expect(plural(1, 'shard')).toBe('1 shard');
    expect(plural(0, 'shard')).toBe('0 shards');
    expect(plural(2, 'file')).toBe('2 files');
    expect(plural(1200, 'row')).toBe('1,200 rows');
    expect(plural(1, 'index', 'indices')).toBe('1 index');
    expect(plural(3, 'index', 'indices')).toBe('3 indices');
  });
});

describe('the command line', () => {
  it('--version and -v print the package version and exit 0', async () => {
    expect(await runCli(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect(await runCli(['-v'])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('COMMAND --help (or -h) prints that command\'s usage and exits 0', async () => {
    expect(await runCli(['run', '--help'])).toMatchObject({ code: 0, stdout: `${commandUsage('run')}\n`, stderr: '' });
    expect(await runCli(['worker', '-h'])).toMatchObject({ code: 0, stdout: `${commandUsage('worker')}\n`, stderr: '' });
    expect(await runCli(['--help'])).toMatchObject({ code: 0, stdout: `${generalUsage()}\n` });
  });

  it('errors within a command point at that command\'s help', async () => {
    expect(await runCli(['run'])).toMatchObject({ code: 2, stderr: 'logship: --config: is required\nsee logship run --help\n' });
    expect(await runCli(['state', '--config', 'x.yaml', '--rows', '3'])).toMatchObject({ code: 2, stderr: 'logship: --rows does not apply to state\nsee logship state --help\n' });
    expect(await runCli(['ship'])).toMatchObject({ code: 2, stderr: 'logship: unknown command "ship"\nsee logship --help\n' });
  });
});
