import type { S3Client } from '@aws-sdk/client-s3';
type S3Sdk = typeof import('@aws-sdk/client-s3');
import type { Bucket } from '@google-cloud/storage';
import type { ContainerClient } from '@azure/storage-blob';
import type { ObjectStateConfig } from './options.js';
import type { AzureBlobExporterConfig } from '../sinks/azure_blob/config.js';
import type { GcsExporterConfig } from '../sinks/gcs/config.js';
import type { S3ExporterConfig } from '../sinks/s3/config.js';

export interface Versioned {
  body: string;
  /** ETag (S3, Azure) or generation (GCS): what a conditional write names. */
  version: string;
}

/** `null`: the object must not exist yet; a string: its version must still be this one. */
export type Precondition = string | null;

/** The few object operations the state store needs, each a single request. */
export interface StateObjects {
  readonly where: string;
  get(name: string): Promise<Versioned | null>;
  /** Writes when the precondition holds and returns the new version; null when it did not hold. */
  put(name: string, body: string, precondition: Precondition): Promise<string | null>;
  remove(name: string): Promise<void>;
  close(): void;
}

const statusOf = (err: unknown): number | undefined => {
  const e = err as { $metadata?: { httpStatusCode?: number }; statusCode?: number; code?: number | string };
  return e.$metadata?.httpStatusCode ?? e.statusCode ?? (typeof e.code === 'number' ? e.code : undefined);
};

/** S3: If-None-Match: * creates only, If-Match: ETag replaces only that version (412 otherwise). */
class S3Objects implements StateObjects {
  readonly where: string;
  constructor(
    private readonly config: S3ExporterConfig,
    private readonly client: S3Client,
    private readonly sdk: S3Sdk,
  ) {
    this.where = `s3://${config.bucket}`;
  }

  async get(name: string): Promise<Versioned | null> {
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.config.bucket, Key: name }));
      return { body: await r.Body!.transformToString('utf8'), version: r.ETag! };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async put(name: string, body: string, precondition: Precondition): Promise<string | null> {
    try {
      const r = await this.client.send(new this.sdk.PutObjectCommand({
        Bucket: this.config.bucket, Key: name, Body: body, ContentType: 'application/json',
        ...(precondition === null ? { IfNoneMatch: '*' } : { IfMatch: precondition }),
      }));
      return r.ETag!;
    } catch (err) {
      // 409 ConditionalRequestConflict: a concurrent conditional write won; 404 on If-Match: gone.
      const status = statusOf(err);
      if (status === 412 || status === 409 || (status === 404 && precondition !== null)) return null;
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.config.bucket, Key: name }));
  }

  close(): void {
    this.client.destroy();
  }
}

/** GCS: ifGenerationMatch 0 creates only; a generation replaces only that one. */
class GcsObjects implements StateObjects {
  readonly where: string;
  constructor(
    config: GcsExporterConfig,
    private readonly bucket: Bucket,
  ) {
    this.where = `gs://${config.bucket}`;
  }

  async get(name: string): Promise<Versioned | null> {
    const file = this.bucket.file(name);
    try {
      const [meta] = await file.getMetadata();
      const generation = String(meta.generation);
      const [data] = await this.bucket.file(name, { generation }).download();
      return { body: data.toString('utf8'), version: generation };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async put(name: string, body: string, precondition: Precondition): Promise<string | null> {
    const file = this.bucket.file(name);
    try {
      await file.save(body, {
        resumable: false, contentType: 'application/json',
        preconditionOpts: { ifGenerationMatch: precondition === null ? 0 : Number(precondition) },
      });
      return String(file.metadata.generation);
    } catch (err) {
      if (statusOf(err) === 412) return null;
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    await this.bucket.file(name).delete({ ignoreNotFound: true });
  }

  close(): void {}
}

/** Azure: If-None-Match: * creates only, If-Match: ETag replaces only that version. */
class AzureObjects implements StateObjects {
  readonly where: string;
  constructor(
    config: AzureBlobExporterConfig,
    private readonly container: ContainerClient,
  ) {
    this.where = `azure://${config.containerName}`;
  }

  async get(name: string): Promise<Versioned | null> {
    try {
      // One request: the body and the ETag of exactly that body.
      const r = await this.container.getBlockBlobClient(name).download();
      const parts: Buffer[] = [];
      for await (const chunk of r.readableStreamBody!) parts.push(chunk as Buffer);
      return { body: Buffer.concat(parts).toString('utf8'), version: r.etag! };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async put(name: string, body: string, precondition: Precondition): Promise<string | null> {
    try {
      const r = await this.container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
        blobHTTPHeaders: { blobContentType: 'application/json' },
        conditions: precondition === null ? { ifNoneMatch: '*' } : { ifMatch: precondition },
      });
      return r.etag!;
    } catch (err) {
      const status = statusOf(err);
      if (status === 412 || status === 409 || (status === 404 && precondition !== null)) return null;
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    await this.container.getBlockBlobClient(name).deleteIfExists();
  }

  close(): void {}
}

/** Each SDK loads only when its store is configured (see createStateStore). */
export async function createStateObjects(config: ObjectStateConfig): Promise<StateObjects> {
  const store = config.store;
  if (store.type === 's3') {
    const [sdk, { createS3Client }] = await Promise.all([import('@aws-sdk/client-s3'), import('../sinks/s3/service.js')]);
    return new S3Objects(store, createS3Client(store), sdk);
  }
  if (store.type === 'gcs') {
    const [{ IdempotencyStrategy }, { createGcsBucket }] = await Promise.all([import('@google-cloud/storage'), import('../sinks/gcs/service.js')]);
    return new GcsObjects(store, createGcsBucket(store, IdempotencyStrategy.RetryConditional));
  }
  const { createContainerClient } = await import('../sinks/azure_blob/service.js');
  return new AzureObjects(store, createContainerClient(store));
}
