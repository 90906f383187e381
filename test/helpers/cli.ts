import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const CLI = fileURLToPath(new URL('../../bin/logship.cjs', import.meta.url));
/** Maps a test's LOGSHIP_TEST_* variables onto logship's test knobs in the spawned process. */
const KNOBS = new URL('./knobs.mjs', import.meta.url).href;

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `logship-${label}-`));
}

export function writeConfig(dir: string, config: unknown, name = 'logship.yaml'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof config === 'string' ? config : YAML.stringify(config));
  return file;
}

/** A Node process warning as Node prints it: "(node:123) Warning: …", "(node:123) [DEP0005] DeprecationWarning: …". */
const NODE_WARNING = /^\(node:\d+\) (?:\[\w+\] )?\w*Warning: .*$/m;

/**
 * Runs the CLI. Its `done` rejects when the process printed a Node process warning (a double-
 * closed descriptor, a leaked listener…): every CLI test checks that stderr is free of them,
 * with --trace-warnings so the failure shows where the warning came from.
 */
export function startCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const env = { ...process.env, LOGSHIP_LOG_LEVEL: 'info', ...opts.env };
  const knobs = Object.keys(env).some((k) => k.startsWith('LOGSHIP_TEST_')) ? ['--import', KNOBS] : [];
  const child = spawn(process.execPath, ['--trace-warnings', ...knobs, CLI, ...args], {
    cwd: opts.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => child.on('close', (code, signal) => {
    const warning = NODE_WARNING.exec(stderr);
    if (warning) reject(new Error(`logship ${args.join(' ')} printed a Node process warning:\n${stderr.slice(warning.index, warning.index + 2000)}`));
    else resolve({ code, signal, stdout, stderr });
  }));
  return { child, done };
}

export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

/** Every finished file under dir (recursively), temp files excluded. */
export function listParts(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && !entry.name.startsWith('.')) out.push(path.join(entry.parentPath, entry.name));
  }
  return out.sort();
}

export function listTempFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => path.basename(f).startsWith('.') && f.endsWith('.tmp'));
}

export function decompressFile(file: string): string {
  const raw = fs.readFileSync(file);
  if (file.endsWith('.gz')) return zlib.gunzipSync(raw).toString('utf8');
  if (file.endsWith('.zst')) return decompressZstd(raw);
  return raw.toString('utf8');
}

function decompressZstd(raw: Buffer): string {
  const z = zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer };
  if (z.zstdDecompressSync) return z.zstdDecompressSync(raw).toString('utf8');
  const { decompress } = createRequire(import.meta.url)('zstd-napi') as { decompress: (b: Buffer) => Buffer };
  return decompress(raw).toString('utf8');
}

/** Canonical JSON text, for comparing a JSON array's elements with jsonb text. */
export const normalize = (doc: string): string => JSON.stringify(JSON.parse(doc));

/** The documents of one exported file: NDJSON lines byte for byte, JSON array elements normalised. */
export function docsOfFile(file: string): string[] {
  const text = decompressFile(file);
  if (/\.json(\.|$)/.test(path.basename(file))) return (JSON.parse(text) as unknown[]).map((d) => JSON.stringify(d));
  return text.split('\n').filter((l) => l.length > 0);
}

/** Documents of every finished file under dir, sorted (a multiset). */
export function exportedDocs(dir: string): string[] {
  return listParts(dir).flatMap(docsOfFile).sort();
}

