import { ConfigError } from '../../core/errors.js';
import type { OptionReader } from '../../core/options.js';
import type { ObjectStoreOptions } from '../definition.js';
import { optionalUrl, readObjectStoreOptions } from '../object_store.js';

export const S3_TYPES = ['s3', 'io.kestra.plugin.ee.aws.s3.LogExporter'];

const MIN_PART = 5 * 1024 * 1024; // S3's minimum multipart part size

export function parseS3Exporter(r: OptionReader, id: string): S3ExporterConfig {
  const endpoint = optionalUrl(r, 'endpoint') ?? optionalUrl(r, 'endpointOverride');
  const config: S3ExporterConfig = {
    ...readObjectStoreOptions(r, id),
    type: 's3',
    bucket: r.string('bucket'),
    region: r.string('region', process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1'),
    accessKeyId: r.optionalString('accessKeyId'),
    secretKeyId: r.optionalString('secretKeyId'),
    sessionToken: r.optionalString('sessionToken'),
    endpoint,
    forcePathStyle: r.boolean('forcePathStyle', endpoint !== undefined),
    partSize: r.byteSize('partSize', 8 * 1024 * 1024),
    queueSize: r.integer('queueSize', 4, 1, 64),
  };
  if (config.partSize < MIN_PART) throw new ConfigError(r.at('partSize'), 'must be at least 5MiB (the S3 minimum part size)');
  if ((config.accessKeyId === undefined) !== (config.secretKeyId === undefined)) {
    throw new ConfigError(r.at(config.accessKeyId ? 'secretKeyId' : 'accessKeyId'), 'accessKeyId and secretKeyId go together (omit both for the default AWS credential chain)');
  }
  return config;
}

export interface S3ExporterConfig extends ObjectStoreOptions {
  type: 's3';
  bucket: string;
  region: string;
  accessKeyId: string | undefined;
  secretKeyId: string | undefined;
  sessionToken: string | undefined;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Multipart part size and parts in flight: memory per upload is about partSize x (queueSize + 1). */
  partSize: number;
  queueSize: number;
}
