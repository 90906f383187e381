import fs from 'node:fs';
import pino from 'pino';
import { redact } from './secrets.js';

const LEVEL_LABELS: [number, string][] = [[50, 'error'], [40, 'warning'], [30, 'info'], [0, 'debug']];
/** Fields every line carries that a person at a terminal does not need. */
const MACHINE_FIELDS = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname']);

/**
 * One pino JSON line as a person reads it: `warning: <message> (field=value …)`, the form `plan`
 * prints its warnings in. Starts by clearing the terminal line, since a progress bar may be drawn
 * on it (the bar is drawn again below at its next redraw).
 */
export function terminalLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `\r\x1b[K${json.trimEnd()}\n`;
  }
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const label = LEVEL_LABELS.find(([n]) => level >= n)![1];
  const fields = Object.entries(entry)
    .filter(([k]) => !MACHINE_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' && /^[^\s"=()]+$/.test(v) ? v : JSON.stringify(v)}`);
  return `\r\x1b[K${label}: ${String(entry.msg ?? '')}${fields.length ? ` (${fields.join(' ')})` : ''}\n`;
}

export interface LoggerOptions {
  /** stderr is a terminal: lines for a person, and only warnings and errors by default. */
  tty: boolean;
  /** LOGSHIP_LOG_LEVEL. */
  level?: string;
  /** LOGSHIP_LOG_FORMAT: `json` keeps JSON lines on a terminal too. */
  format?: string;
  /** Where lines go (tests); stderr by default, written synchronously. */
  write?: (line: string) => void;
}

/** Structured JSON logs on stderr (stdout carries results), readable lines on a terminal. Every line passes through redact. */
export function createLogger(o: LoggerOptions) {
  const write = o.write ?? ((line: string) => fs.writeSync(2, line));
  const readable = o.tty && o.format !== 'json';
  return pino(
    {
      name: 'logship',
      // A person at a terminal gets the progress bar and summary; info lines are for machines.
      level: o.level ?? (o.tty ? 'warn' : 'info'),
      base: undefined,
      hooks: { streamWrite: (s: string) => redact(s) },
    },
    readable ? { write: (s: string) => write(terminalLine(s)) } : o.write ? { write } : pino.destination({ fd: 2, sync: true }),
  );
}

export const log = createLogger({ tty: process.stderr.isTTY === true, level: process.env.LOGSHIP_LOG_LEVEL, format: process.env.LOGSHIP_LOG_FORMAT });

export type Logger = typeof log;
