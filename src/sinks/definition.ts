import type { OutputOptions } from '../encode/options.js';

import type { OptionReader } from '../core/options.js';
import type { ShardSpec } from '../core/keyset.js';
import type { Exporter } from './types.js';

/** What every parsed exporter config has; each destination's own config type lives in its folder. */
export interface ExporterConfigBase {
  id: string;
  /** The definition's canonical type name, whatever spelling the user wrote. */
  type: string;
}

/**
 * `files`: the destination holds named files or objects (formats, rotation, key templates).
 * `documents`: the destination takes events in requests (search indices, observability platforms).
 */
export type SinkShape = 'files' | 'documents';

/**
 * What a killed-and-rerun export leaves in the destination:
 * - `exactly-once`: deterministic names, atomic visibility, reruns replace (files, objects);
 * - `idempotent`: the destination dedupes by an id logship sets (Elasticsearch `_id`);
 * - `bounded-duplicates`: no dedupe on the platform's side, so logship reads shards in
 *   (timestamp, key) order and records each exporter's acknowledged prefix; a rerun resends at
 *   most the requests that were in flight.
 */
export type DeliveryGuarantee = 'exactly-once' | 'idempotent' | 'bounded-duplicates';

/**
 * One destination, described once: its type names, option parser, lazy loader, shape, guarantee
 * and what `plan` shows. The registry, `plan`, `tune` and the exit codes iterate over these, so
 * adding a destination is one folder plus one registry line.
 */
export interface SinkDefinition<C extends ExporterConfigBase = ExporterConfigBase> {
  /** Canonical name, written as `type:` in logship configs and stored in the parsed config. */
  readonly type: string;
  /** Other accepted spellings (Kestra's plugin class names), compared case-insensitively. */
  readonly aliases: readonly string[];
  readonly shape: SinkShape;
  readonly guarantee: DeliveryGuarantee;
  /** Validates the options (the reader names each option path in errors); `r.done()` is the caller's. */
  parse(r: OptionReader, id: string): C;
  /** Loads the destination's code and SDK on first use: worker threads import only what is configured. */
  load(config: C): Promise<Exporter>;
  /** Where a shard's first rows would go, for `plan` (a file name, an index, a stream). */
  describeTarget(config: C, shard: ShardSpec): string;
  /**
   * For platforms that reject entries far behind the newest they hold (Loki): a shard starts only
   * when its end is at most this many ms after the start of the oldest unfinished shard, so
   * parallel shards never push one stream further ahead than the platform tolerates.
   */
  maxShardLeadMs?(config: C): number | undefined;
  /**
   * What `plan` should warn about for this window (CloudWatch: events older than it accepts).
   * May ask the destination; a failure to ask is a warning too, never an error.
   */
  planWarnings?(config: C, window: { start: string; end: string }): Promise<string[]>;
}

/** Erases a definition's config type so definitions of different destinations share one list. */
export function defineSink<C extends ExporterConfigBase>(d: SinkDefinition<C>): SinkDefinition {
  return d as unknown as SinkDefinition;
}

/** Options shared by the object-store exporters. */
export interface ObjectStoreOptions extends OutputOptions {
  id: string;
  /** Attempts per request, retried by the SDK with exponential backoff and jitter. */
  maxAttempts: number;
}

/** Any exporter's parsed options; its definition (src/sinks/registry.ts) knows the exact type. */
export type ExporterConfig = ExporterConfigBase;

/** The options of an exporter that writes files or objects. */
export interface FileShapedConfig extends ExporterConfigBase, OutputOptions {}
