import { PassThrough } from 'node:stream';
import { ClientSecretCredential } from '@azure/identity';
import { BlobServiceClient, StorageRetryPolicyType, StorageSharedKeyCredential, type ContainerClient, type StoragePipelineOptions } from '@azure/storage-blob';
import type { AzureBlobExporterConfig } from './config.js';
import { httpFailure } from '../../core/errors.js';
import { partMetadata } from '../object_store.js';
import type { ObjectService, PartUpload } from '../types.js';

/** Azure metadata names must be C# identifiers: no hyphens. */
function azureMetadata(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k.replace(/-/g, '_'), v]));
}

/** The container client for an Azure exporter's options (also used by the Azure state store). */
export function createContainerClient(config: AzureBlobExporterConfig): ContainerClient {
  const options: StoragePipelineOptions = { retryOptions: { maxTries: config.maxAttempts, retryPolicyType: StorageRetryPolicyType.EXPONENTIAL } };
  let service: BlobServiceClient;
  if (config.connectionString) service = BlobServiceClient.fromConnectionString(config.connectionString, options);
  else if (config.sasToken) service = new BlobServiceClient(`${config.endpoint!.replace(/\/$/, '')}?${config.sasToken.replace(/^\?/, '')}`, undefined, options);
  else if (config.sharedKeyAccountName) service = new BlobServiceClient(config.endpoint!, new StorageSharedKeyCredential(config.sharedKeyAccountName, config.sharedKeyAccountAccessKey!), options);
  else service = new BlobServiceClient(config.endpoint!, new ClientSecretCredential(config.tenantId!, config.clientId!, config.clientSecret!), options);
  return service.getContainerClient(config.containerName);
}

/**
 * Azure block blobs via uploadStream: blocks are staged as bytes arrive (blockSize x concurrency
 * buffered) and the blob appears only when the block list is committed at the end.
 */
export class AzureBlobService implements ObjectService {
  readonly label: string;
  private readonly container: ContainerClient;

  constructor(private readonly config: AzureBlobExporterConfig) {
    this.label = `azure-blob exporter '${config.id}' (container ${config.containerName})`;
    this.container = createContainerClient(config);
  }

  async check(): Promise<void> {
    try {
      await this.container.getProperties();
    } catch (err) {
      throw this.explain(err, 'cannot use the container');
    }
  }

  async open(name: string, contentType: string, contentEncoding: string | undefined): Promise<PartUpload> {
    const blob = this.container.getBlockBlobClient(name);
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const abort = new AbortController();
    const uploaded = blob.uploadStream(body, this.config.blockSize, this.config.concurrency, {
      abortSignal: abort.signal,
      blobHTTPHeaders: { blobContentType: contentType, blobContentEncoding: contentEncoding },
      metadata: azureMetadata({ 'logship-exporter': this.config.id }),
    });
    uploaded.catch(() => {});
    let metadata: Record<string, string> | null = null;
    return {
      sink: body,
      finalMeta: (meta) => {
        metadata = azureMetadata(partMetadata(meta));
      },
      commit: async () => {
        try {
          await uploaded;
          if (metadata) await blob.setMetadata(metadata);
        } catch (err) {
          throw this.explain(err, `upload of ${name} failed`);
        }
      },
      abort: async () => {
        abort.abort();
        body.destroy();
        await uploaded.catch(() => {});
      },
    };
  }

  async removeStale(prefixes: string[], keep: Set<string>, pattern: RegExp): Promise<string[]> {
    const removed: string[] = [];
    for (const prefix of prefixes) {
      for await (const b of this.container.listBlobsFlat({ prefix })) {
        if (!pattern.test(b.name) || keep.has(b.name)) continue;
        await this.container.deleteBlob(b.name, { deleteSnapshots: 'include' }).catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 404) throw err;
        });
        removed.push(b.name);
      }
    }
    return removed;
  }

  private explain(err: unknown, what: string): Error {
    const e = err as { statusCode?: number; code?: string; message?: string };
    const status = e.statusCode;
    const hint = status === 403 ? ' (credentials rejected or not allowed)' : status === 404 ? ` (container ${this.config.containerName} does not exist)` : '';
    const message = `${this.label}: ${what}: ${status ? `HTTP ${status} ` : ''}${e.code ?? (e.message ?? String(err)).split('\n')[0]}${hint}`;
    return httpFailure(status, message);
  }
}
