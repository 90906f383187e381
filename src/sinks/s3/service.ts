import { PassThrough } from 'node:stream';
import {
  AbortMultipartUploadCommand, CopyObjectCommand, DeleteObjectsCommand, HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand,
  ListObjectsV2Command, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3ExporterConfig } from './config.js';
import { httpFailure } from '../../core/errors.js';
import { partMetadata } from '../object_store.js';
import type { ObjectService, PartMeta, PartUpload } from '../types.js';

/** The client for an S3 exporter's options (also used by the S3 state store). */
export function createS3Client(config: S3ExporterConfig): S3Client {
  return new S3Client({
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
    maxAttempts: config.maxAttempts,
    credentials: config.accessKeyId ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretKeyId!, sessionToken: config.sessionToken } : undefined,
  });
}

/**
 * S3 through lib-storage's multipart Upload: compressed bytes stream in, at most
 * partSize x (queueSize + 1) of them buffered; the object appears only on CompleteMultipartUpload.
 * Request retries (5xx, throttling, resets) are the SDK's: exponential backoff with full jitter.
 */
export class S3Service implements ObjectService {
  readonly label: string;
  private readonly client: S3Client;

  constructor(private readonly config: S3ExporterConfig) {
    this.label = `s3 exporter '${config.id}' (bucket ${config.bucket})`;
    this.client = createS3Client(config);
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }));
    } catch (err) {
      throw this.explain(err, 'cannot use the bucket');
    }
  }

  async open(name: string, contentType: string, contentEncoding: string | undefined): Promise<PartUpload> {
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const metadata: Record<string, string> = { 'logship-exporter': this.config.id };
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.config.bucket, Key: name, Body: body, ContentType: contentType, ContentEncoding: contentEncoding, Metadata: metadata },
      partSize: this.config.partSize,
      queueSize: this.config.queueSize,
      leavePartsOnError: false,
    });
    const done = upload.done();
    done.catch(() => {}); // awaited in commit; a failure also surfaces through the body's pipeline
    let finalMeta: PartMeta | null = null;
    return {
      sink: body,
      finalMeta: (meta) => {
        finalMeta = meta;
        // Small objects go up in one PutObject when the body ends: it carries these already.
        Object.assign(metadata, partMetadata(meta));
      },
      commit: async () => {
        try {
          await done;
        } catch (err) {
          throw this.explain(err, `upload of ${name} failed`);
        }
        // A multipart upload is created before the counts are known, and S3 metadata is
        // immutable: a server-side copy onto itself sets it (no bytes pass through us).
        // HEAD rather than ETag shape tells which path lib-storage took: not every
        // S3-compatible store marks multipart ETags with "-N".
        if (finalMeta && !(await this.hasCounts(name))) {
          await this.client.send(new CopyObjectCommand({
            Bucket: this.config.bucket, Key: name, CopySource: `${this.config.bucket}/${encodeURIComponent(name).replace(/%2F/g, '/')}`,
            MetadataDirective: 'REPLACE', Metadata: partMetadata(finalMeta), ContentType: contentType, ContentEncoding: contentEncoding,
          })).catch((err) => {
            throw this.explain(err, `setting metadata on ${name} failed`);
          });
        }
      },
      abort: async () => {
        body.destroy();
        await upload.abort().catch(() => {});
      },
    };
  }

  private async hasCounts(name: string): Promise<boolean> {
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: name }));
    return head.Metadata?.['logship-rows'] !== undefined;
  }

  async removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]> {
    const removed: string[] = [];
    for (const prefix of prefixes) {
      let token: string | undefined;
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }));
        const stale = (page.Contents ?? []).map((o) => o.Key!).filter((k) => pattern.test(k) && !keep.has(k));
        if (stale.length > 0) {
          const r = await this.client.send(new DeleteObjectsCommand({ Bucket: this.config.bucket, Delete: { Objects: stale.map((Key) => ({ Key })), Quiet: true } }));
          if (r.Errors?.length) throw new Error(`${this.label}: could not delete stale ${r.Errors[0]!.Key}: ${r.Errors[0]!.Message}`);
          removed.push(...stale);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      await this.abortOrphanUploads(prefix, pattern);
    }
    return removed;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Multipart uploads of a killed attempt hold storage (and cost) until aborted. */
  private async abortOrphanUploads(prefix: string, pattern: RegExp): Promise<void> {
    let uploads;
    try {
      uploads = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: prefix }));
    } catch {
      return; // some S3-compatible stores do not list uploads; a lifecycle rule cleans them there
    }
    for (const u of uploads.Uploads ?? []) {
      if (u.Key && pattern.test(u.Key)) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => {});
    }
  }

  private explain(err: unknown, what: string): Error {
    const e = err as S3ServiceException & { code?: string };
    const status = e.$metadata?.httpStatusCode;
    const reason = e.name && e.name !== 'Error' ? `${e.name}${e.message && e.message !== e.name && e.message !== 'UnknownError' ? `: ${e.message}` : ''}` : e.message || String(err);
    const hint = status === 403 ? ' (credentials rejected or not allowed)' : status === 404 ? ` (bucket ${this.config.bucket} does not exist)` : '';
    const message = `${this.label}: ${what}: ${status ? `HTTP ${status} ` : ''}${reason}${hint}`;
    return httpFailure(status, message);
  }
}
