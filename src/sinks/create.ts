import type { ExporterConfig } from '../config/types.js';
import type { Exporter } from './types.js';

/**
 * Destinations load on demand: the cloud SDKs together take ~0.8 s and ~80 MiB per thread to
 * import, which a file-only run (and every worker thread) should not pay.
 */
export async function createExporter(config: ExporterConfig): Promise<Exporter> {
  switch (config.type) {
    case 'file':
      return (await import('./file/index.js')).createFileExporter(config);
    case 's3': {
      const [{ objectStoreExporter }, { S3Service }] = await Promise.all([import('./object_store.js'), import('./s3/service.js')]);
      return objectStoreExporter(config, new S3Service(config));
    }
    case 'gcs': {
      const [{ objectStoreExporter }, { GcsService }] = await Promise.all([import('./object_store.js'), import('./gcs/service.js')]);
      return objectStoreExporter(config, new GcsService(config));
    }
    case 'azure-blob': {
      const [{ objectStoreExporter }, { AzureBlobService }] = await Promise.all([import('./object_store.js'), import('./azure_blob/service.js')]);
      return objectStoreExporter(config, new AzureBlobService(config));
    }
    case 'elasticsearch':
    case 'opensearch':
      return (await import('./elasticsearch/index.js')).createSearchExporter(config);
  }
}
