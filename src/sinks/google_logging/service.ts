import { createRequire } from 'node:module';
import type { DeliveryService } from '../delivery/types.js';
import { PermanentExportError } from '../../core/errors.js';
import type { GoogleLoggingExporterConfig } from './config.js';
import type { LogEntry, WriteRequest } from './request_builder.js';
import { decideWriteError } from './retry.js';

interface WriteClient {
  writeLogEntries(request: Record<string, unknown>, options: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * entries.write through the official client (`@google-cloud/logging`'s LoggingServiceV2Client)
 * over REST. Its own retries are off: the core decides per entry, which a whole-call retry
 * cannot. With a key given, the auth library signs its own JWT and the cloud metadata server
 * is never probed.
 */
export class GoogleLoggingService implements DeliveryService<WriteRequest, unknown> {
  readonly label: string;
  private readonly logName: string;

  private constructor(private readonly config: GoogleLoggingExporterConfig, private readonly client: WriteClient) {
    this.label = `google-logging exporter '${config.id}' (projects/${config.projectId}/logs/${config.logName})`;
    this.logName = `projects/${config.projectId}/logs/${encodeURIComponent(config.logName)}`;
  }

  static create(config: GoogleLoggingExporterConfig): GoogleLoggingService {
    if (config.serviceAccount) process.env.METADATA_SERVER_DETECTION ??= 'none';
    const { v2 } = createRequire(import.meta.url)('@google-cloud/logging') as { v2: { LoggingServiceV2Client: new (o: Record<string, unknown>) => WriteClient } };
    const url = new URL(config.endpoint);
    const client = new v2.LoggingServiceV2Client({
      projectId: config.projectId,
      credentials: config.serviceAccount ? JSON.parse(config.serviceAccount) as object : undefined,
      scopes: config.scopes,
      apiEndpoint: url.hostname,
      port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
      protocol: url.protocol.replace(':', ''),
      fallback: true,
    });
    return new GoogleLoggingService(config, client);
  }

  private write(entries: LogEntry[], dryRun: boolean): Promise<unknown> {
    return this.client.writeLogEntries(
      { logName: this.logName, resource: this.config.resource, entries, partialSuccess: true, dryRun },
      { retry: { retryCodes: [] }, timeout: this.config.requestTimeoutMs },
    );
  }

  /** A dry-run write: authenticated and validated by the API, stored nowhere. */
  async check(): Promise<void> {
    const now = Date.now();
    const probe: LogEntry = { insertId: 'logship-check', timestamp: { seconds: Math.floor(now / 1000), nanos: 0 }, severity: 'DEBUG', jsonPayload: { fields: { message: { stringValue: 'logship check' } } }, labels: {} };
    try {
      await this.write([probe], true);
    } catch (err) {
      const d = decideWriteError(err, 1, this.label);
      if (d.kind === 'fatal') throw new PermanentExportError(d.reason.startsWith(this.label) ? d.reason : `${this.label}: ${d.reason}`);
      // Anything passing (unreachable, throttled) is left to the shards' retries.
    }
  }

  send(request: WriteRequest): Promise<unknown> {
    return this.write(request.entries, false);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
