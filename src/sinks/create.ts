import type { ExporterConfig } from '../config/types.js';
import { createFileExporter } from './file/index.js';
import type { Exporter } from './types.js';

export function createExporter(config: ExporterConfig): Exporter {
  switch (config.type) {
    case 'file':
      return createFileExporter(config);
  }
}
