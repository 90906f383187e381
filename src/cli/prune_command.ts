import { ConfigError } from '../core/errors.js';
import type { Config } from '../shard/config.js';
import type { SearchExporterConfig } from '../sinks/elasticsearch/config.js';
import { parseIndexPattern } from '../sinks/elasticsearch/request_builder.js';
import { SearchService } from '../sinks/elasticsearch/service.js';
import { plural } from '../core/format.js';

export interface PruneOptions { exporter: string | undefined; keepDays: number; dryRun: boolean; now?: Date }

/**
 * Retention clean-up for date-patterned indices: deletes indices of the exporter's pattern whose
 * date is older than keepDays (whole days, UTC). Names that do not parse as the pattern are
 * never touched.
 */
export async function pruneCommand(config: Config, o: PruneOptions): Promise<string[]> {
  const search = config.logExporters.filter((e): e is SearchExporterConfig => e.type === 'elasticsearch' || e.type === 'opensearch');
  const chosen = o.exporter ? search.find((e) => e.id === o.exporter) : search.length === 1 ? search[0] : undefined;
  if (!chosen) {
    const ids = search.map((e) => e.id).join(', ') || 'none';
    throw new ConfigError('--exporter', o.exporter ? `no Elasticsearch/OpenSearch exporter with id ${JSON.stringify(o.exporter)} (have: ${ids})` : `name the exporter to prune (Elasticsearch/OpenSearch exporters: ${ids})`);
  }
  const pattern = parseIndexPattern(`logExporters '${chosen.id}'.indexName`, chosen.indexName);
  if (!pattern.unit) throw new ConfigError(`logExporters '${chosen.id}'.indexName`, `has no date pattern, so there are no daily indices to prune (${chosen.indexName})`);
  const now = o.now ?? new Date();
  const cutoff = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - o.keepDays * 86_400_000;
  const service = await SearchService.create(chosen);
  try {
    const all = await service.listIndices(`${pattern.prefix}*`).catch((err) => {
      throw service.explain(err, 'listing indices failed');
    });
    const old = all.filter((name) => {
      const d = pattern.dateOf(name);
      return d !== null && d.getTime() < cutoff;
    }).sort();
    for (const name of old) {
      process.stdout.write(`${o.dryRun ? 'would delete' : 'deleting'} ${name}\n`);
      if (!o.dryRun) await service.deleteIndex(name).catch((err) => {
        throw service.explain(err, `deleting ${name} failed`);
      });
    }
    process.stdout.write(`${old.length} of ${plural(all.length, 'index', 'indices')} matching ${pattern.prefix}* ${old.length === 1 ? 'is' : 'are'} older than ${plural(o.keepDays, 'day')}${o.dryRun ? ' (dry run: nothing deleted)' : ''}\n`);
    return old;
  } finally {
    await service.close();
  }
}
