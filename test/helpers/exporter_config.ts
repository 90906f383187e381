import YAML from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import type { ExporterConfig } from '../../src/sinks/definition.js';

/**
 * One exporter's parsed config, defaults filled in, as the run would build it from YAML.
 * `secrets` stand in for the environment `{{ secret('NAME') }}` reads.
 */
export function exporterConfig<T = ExporterConfig>(exporter: Record<string, unknown>, secrets: Record<string, string> = {}): T {
  const config = loadConfigText(YAML.stringify({ logExporters: [{ id: 'x', ...exporter }] }), { secrets: { env: secrets, secretsDir: undefined } });
  return config.logExporters[0] as T;
}
