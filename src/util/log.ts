import pino from 'pino';
import { redact } from '../config/secrets.js';

/** Structured JSON logs on stderr (stdout carries results). Every line passes through redact. */
export const log = pino(
  {
    name: 'logship',
    level: process.env.LOGSHIP_LOG_LEVEL ?? 'info',
    base: undefined,
    hooks: { streamWrite: (s: string) => redact(s) },
  },
  pino.destination({ fd: 2, sync: true }),
);

export type Logger = typeof log;
