import pino from 'pino';
import { redact } from '../config/secrets.js';

/** Structured JSON logs on stderr (stdout carries results). Every line passes through redact. */
export const log = pino(
  {
    name: 'logship',
    // A person at a terminal gets the progress bar and summary; JSON info lines are for machines.
    level: process.env.LOGSHIP_LOG_LEVEL ?? (process.stderr.isTTY ? 'warn' : 'info'),
    base: undefined,
    hooks: { streamWrite: (s: string) => redact(s) },
  },
  pino.destination({ fd: 2, sync: true }),
);

export type Logger = typeof log;
