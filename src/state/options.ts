import type { AzureBlobExporterConfig } from '../sinks/azure_blob/config.js';
import type { GcsExporterConfig } from '../sinks/gcs/config.js';
import type { S3ExporterConfig } from '../sinks/s3/config.js';

/** The pg-boss queue that distributed mode (`run --distributed`, `worker`) hands shards through. */
export interface QueueConfig {
  /** Database holding the queue; default: the source database. */
  url: string | undefined;
  /** Schema pg-boss creates and owns. */
  schema: string;
  /** A shard job not finished this long after a worker took it is retried (its worker is presumed dead). */
  shardTimeoutMs: number;
  /** How often an idle worker asks for a job, and the coordinator looks for finished shards. */
  pollIntervalMs: number;
}

/** State as one JSON object per offsetKey in a bucket or container, locked by a lease object. */
export interface ObjectStateConfig {
  type: 's3' | 'gcs' | 'azure-blob';
  /** As written: s3://bucket/prefix/, gs://bucket/prefix/, azure://container/prefix/. */
  uri: string;
  /** Object-name prefix inside the bucket or container ('' or ending in '/'). */
  prefix: string;
  /** The state object is written at most this often (and at run end, stop and exit). */
  flushIntervalMs: number;
  /** A lease not renewed for this long is taken over by the next run. */
  leaseMs: number;
  /** The client options, parsed with the same rules as the exporter of that type. */
  store: S3ExporterConfig | GcsExporterConfig | AzureBlobExporterConfig;
}

export type StateConfig = { type: 'postgres'; table: string } | { type: 'file'; path: string } | ObjectStateConfig;
