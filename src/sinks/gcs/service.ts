import { IdempotencyStrategy, Storage, type Bucket } from '@google-cloud/storage';
import type { GcsExporterConfig } from './config.js';
import { httpFailure, PermanentExportError } from '../../core/errors.js';
import { partMetadata } from '../object_store.js';
import type { ObjectService, PartMeta, PartUpload } from '../types.js';

/**
 * The bucket handle for a GCS exporter's options (also used by the GCS state store). Exporter
 * writes are idempotent (deterministic names, whole-object overwrite), so they retry always; the
 * state store's conditional writes retry only as the library deems safe by precondition.
 */
export function createGcsBucket(config: GcsExporterConfig, idempotencyStrategy: IdempotencyStrategy): Bucket {
  const storage = new Storage({
    projectId: config.projectId,
    credentials: config.serviceAccount ? JSON.parse(config.serviceAccount) : undefined,
    apiEndpoint: config.endpoint,
    retryOptions: { autoRetry: true, maxRetries: config.maxAttempts - 1, retryDelayMultiplier: 2, maxRetryDelay: 32, idempotencyStrategy },
  });
  return storage.bucket(config.bucket);
}

/**
 * GCS resumable uploads: one chunk (chunkSize) buffered at a time and retried by the client
 * library with exponential backoff; the object exists only once the final chunk is accepted.
 */
export class GcsService implements ObjectService {
  readonly label: string;
  private readonly bucket: Bucket;

  constructor(private readonly config: GcsExporterConfig) {
    this.label = `gcs exporter '${config.id}' (bucket ${config.bucket})`;
    this.bucket = createGcsBucket(config, IdempotencyStrategy.RetryAlways);
  }

  async check(): Promise<void> {
    try {
      const [exists] = await this.bucket.exists();
      if (!exists) throw new PermanentExportError(`${this.label}: bucket ${this.config.bucket} does not exist`);
    } catch (err) {
      throw this.explain(err, 'cannot use the bucket');
    }
  }

  async open(name: string, contentType: string, contentEncoding: string | undefined): Promise<PartUpload> {
    const file = this.bucket.file(name);
    const sink = file.createWriteStream({
      resumable: true,
      chunkSize: this.config.chunkSize,
      gzip: false, // already compressed (or deliberately not)
      validation: 'crc32c',
      metadata: { contentType, contentEncoding, metadata: { 'logship-exporter': this.config.id } },
    });
    let finalMeta: PartMeta | null = null;
    return {
      sink,
      finalMeta: (meta) => {
        finalMeta = meta;
      },
      commit: async () => {
        // The stream finished: the resumable session was finalised and the object is live.
        if (finalMeta) await file.setMetadata({ metadata: partMetadata(finalMeta) }).catch((err) => {
          throw this.explain(err, `setting metadata on ${name} failed`);
        });
      },
      abort: async () => {
        sink.destroy(new Error('aborted'));
      },
    };
  }

  async removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]> {
    const removed: string[] = [];
    for (const prefix of prefixes) {
      const [files] = await this.bucket.getFiles({ prefix, autoPaginate: true });
      for (const f of files) {
        if (!pattern.test(f.name) || keep.has(f.name)) continue;
        await f.delete({ ignoreNotFound: true });
        removed.push(f.name);
      }
    }
    return removed;
  }

  private explain(err: unknown, what: string): Error {
    if (err instanceof PermanentExportError) return err;
    const e = err as { code?: number | string; message?: string };
    const status = typeof e.code === 'number' ? e.code : undefined;
    const hint = status === 401 || status === 403 ? ' (credentials rejected or not allowed)' : status === 404 ? ` (bucket ${this.config.bucket} does not exist)` : '';
    const message = `${this.label}: ${what}: ${status ? `HTTP ${status} ` : ''}${(e.message ?? String(err)).split('\n')[0]}${hint}`;
    return httpFailure(status, message);
  }
}
