import type { ExporterConfig } from '../config/types.js';
import { AzureBlobService } from './azure_blob/service.js';
import { createSearchExporter } from './elasticsearch/index.js';
import { createFileExporter } from './file/index.js';
import { GcsService } from './gcs/service.js';
import { objectStoreExporter } from './object_store.js';
import { S3Service } from './s3/service.js';
import type { Exporter } from './types.js';

export function createExporter(config: ExporterConfig): Exporter {
  switch (config.type) {
    case 'file':
      return createFileExporter(config);
    case 's3':
      return objectStoreExporter(config, new S3Service(config));
    case 'gcs':
      return objectStoreExporter(config, new GcsService(config));
    case 'azure-blob':
      return objectStoreExporter(config, new AzureBlobService(config));
    case 'elasticsearch':
    case 'opensearch':
      return createSearchExporter(config);
  }
}
