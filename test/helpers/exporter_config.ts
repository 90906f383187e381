import path from 'node:path';
import YAML from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import type { ExporterConfig } from '../../src/sinks/definition.js';
import { tempDir } from './cli.js';

/**
 * One exporter's parsed config, defaults filled in, as the run would build it from YAML.
 * `secrets` stand in for the environment `{{ secret('NAME') }}` reads.
 */
export function exporterConfig<T = ExporterConfig>(exporter: Record<string, unknown>, secrets: Record<string, string> = {}): T {
  const config = loadConfigText(YAML.stringify({ logExporters: [{ id: 'x', ...exporter }] }), { secrets: { env: secrets, secretsDir: undefined } });
  return config.logExporters[0] as T;
}

/** An exporter's parsed config with a dead-letter directory of its own, for the in-process platform tests. */
export function withDeadLetter(label: string, exporter: Record<string, unknown>): { deadLetter: string; config: ExporterConfig } {
  const deadLetter = path.join(tempDir(label), 'dead');
  return { deadLetter, config: exporterConfig({ deadLetter, ...exporter }) };
}

/** Runs `body` against a fake server started for it, and stops the server whatever happens. */
export async function withStarted<S extends { stop(): Promise<unknown> }>(started: Promise<S>, body: (server: S) => Promise<void>): Promise<void> {
  const server = await started;
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}
