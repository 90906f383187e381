import type { ChildProcess } from 'node:child_process';
import type { CliResult } from './cli.js';

/**
 * Polls `cond` until it holds. The timeout only bounds a hang (it is no assertion on speed): it
 * fails the test with `what` instead of leaving it to the suite's test timeout.
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with `promise`, or fails naming `what` if it has not settled within `timeoutMs`. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SIGKILLs a running CLI once `cond` holds, i.e. at a known point mid-run, and waits for it to
 * die. Fails if the run ended before `cond` held (then the kill would prove nothing) or if the
 * process does not go away.
 */
export async function killWhen(run: { child: ChildProcess; done: Promise<CliResult> }, what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<CliResult> {
  const { child, done } = run;
  await waitFor(what, async () => child.exitCode !== null || (await cond()), timeoutMs);
  if (child.exitCode !== null) {
    const r = await done;
    throw new Error(`the run ended (exit ${r.code}) before ${what}, so the kill would land nowhere; stderr: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  }
  child.kill('SIGKILL');
  const r = await within('the killed run to exit', done, timeoutMs);
  if (r.signal !== 'SIGKILL') throw new Error(`expected the run to die of SIGKILL, got exit ${r.code} signal ${r.signal}`);
  return r;
}
