import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from './helpers/cli.js';
import { waitFor } from './helpers/wait.js';

const EMBEDDED_PG = fileURLToPath(new URL('../dist/src/demo/embedded_pg.js', import.meta.url));

/** Runs an ES module snippet in a fresh Node process; returns its exit code and stdout. */
function runModule(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

describe('the logship command', () => {
  it("sizes libuv's thread pool to 16 before Node first uses it, unless UV_THREADPOOL_SIZE is set", async () => {
    expect(process.env.UV_THREADPOOL_SIZE).toBeUndefined();
    const dir = tempDir('threadpool');
    const hook = path.join(dir, 'count_threads.cjs');
    fs.writeFileSync(hook, "process.on('exit', () => process.stderr.write(`threads=${require('node:fs').readdirSync('/proc/self/task').length}\\n`));\n");
    const threadsOf = async (env: Record<string, string>) => {
      const r = await runCli(['--help'], { env: { NODE_OPTIONS: `--require ${hook}`, ...env } });
      expect(r.code).toBe(0);
      return Number(/threads=(\d+)/.exec(r.stderr)![1]);
    };
    // libuv starts all of its pool's threads at once; everything else in the two processes is alike.
    expect((await threadsOf({})) - (await threadsOf({ UV_THREADPOOL_SIZE: '4' }))).toBe(12);
  });
});

describe('a process that starts the embedded PostgreSQL keeps its own exit code', () => {
  it('ends with the exitCode it set after stopping the server itself', async () => {
    const r = await runModule(`
      const { startEmbeddedPostgres } = await import(${JSON.stringify(EMBEDDED_PG)});
      const server = await startEmbeddedPostgres();
      await server.stop();
      process.exitCode = 7;`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(7);
  });

  it('an explicit process.exit(5) with the server still running exits 5 and shuts the server down', async () => {
    const r = await runModule(`
      const { startEmbeddedPostgres } = await import(${JSON.stringify(EMBEDDED_PG)});
      const server = await startEmbeddedPostgres();
      process.stdout.write(JSON.stringify({ port: server.port }));
      process.exit(5);`);
    expect(r.code).toBe(5);
    const { port } = JSON.parse(r.stdout) as { port: number };
    await waitFor(`the server on port ${port} to shut down`, async () => !(await accepts(port)));
  });

  it('a demo that fails after starting its PostgreSQL exits non-zero, with one line', async () => {
    const out = tempDir('demo-fails');
    const r = await runCli(['demo', '--rows', '10', '--out', out, '--format', 'XML']);
    expect(r.stdout).toContain('starting an embedded PostgreSQL');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^logship: logExporters\[0\]\.format: /)]);
  });
});
