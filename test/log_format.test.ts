import { describe, expect, it } from 'vitest';
import { createLogger, terminalLine } from '../src/core/log.js';

function loggerOn(tty: boolean, env: { level?: string; format?: string } = {}) {
  const lines: string[] = [];
  return { log: createLogger({ tty, ...env, write: (l) => lines.push(l) }), lines };
}

describe('log lines', () => {
  it('on a terminal, a warning is the readable line plan prints (warning: …), on a line of its own above the bar', () => {
    const { log, lines } = loggerOn(true);
    log.warn('the window is read by a scan of the whole table');
    log.warn({ shard: 3, attempt: 1, error: 'ECONNRESET: the server went away' }, 'shard failed; retrying it');
    log.info({ rows: 5 }, 'planned');
    expect(lines).toEqual([
      '\r\x1b[Kwarning: the window is read by a scan of the whole table\n',
      '\r\x1b[Kwarning: shard failed; retrying it (shard=3 attempt=1 error="ECONNRESET: the server went away")\n',
    ]);
  });

  it('the same text as plan\'s for the same warning', () => {
    // plan prints `warning: ${w}`; a run logs log.warn(w) for the same w (runner.ts).
    const w = 'source.table has no index on its time column';
    expect(terminalLine(JSON.stringify({ level: 40, time: 1, name: 'logship', msg: w }))).toBe(`\r\x1b[Kwarning: ${w}\n`);
  });

  it('off a terminal (or with LOGSHIP_LOG_FORMAT=json), JSON lines, info and up', () => {
    for (const { log, lines } of [loggerOn(false), loggerOn(true, { format: 'json', level: 'info' })]) {
      log.warn({ shard: 3 }, 'shard failed');
      log.info('planned');
      expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
        expect.objectContaining({ level: 40, name: 'logship', shard: 3, msg: 'shard failed' }),
        expect.objectContaining({ level: 30, msg: 'planned' }),
      ]);
    }
  });

  it('LOGSHIP_LOG_LEVEL still applies on a terminal, and errors and info say so', () => {
    const { log, lines } = loggerOn(true, { level: 'info' });
    log.info({ port: 9464 }, 'serving Prometheus metrics on :9464/metrics');
    log.error('boom');
    expect(lines).toEqual(['\r\x1b[Kinfo: serving Prometheus metrics on :9464/metrics (port=9464)\n', '\r\x1b[Kerror: boom\n']);
  });
});
