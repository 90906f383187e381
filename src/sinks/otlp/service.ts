import type { ISerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { IExportLogsServiceResponse } from '@opentelemetry/otlp-transformer';
import { checkWithRetries } from '../delivery/check.js';
import type { Decision } from '../delivery/decision.js';
import { HttpClient } from '../delivery/http_client.js';
import type { DeliveryService } from '../delivery/types.js';
import type { OtlpExporterConfig } from './config.js';
import type { OtlpRequest } from './request_builder.js';
import { decideOtlpResponse, type OtlpResponse } from './retry.js';

export type LogsSerializer = ISerializer<ReadableLogRecord[], IExportLogsServiceResponse>;

/**
 * POSTs ExportLogsServiceRequests encoded by the official serializer. (The OpenTelemetry JS
 * OTLP exporters batch, retry and drop on their own schedule; logship needs its own batching,
 * per-request decisions and acknowledged prefix, so it uses their serializers, not their exporters.)
 */
export class OtlpService implements DeliveryService<OtlpRequest, OtlpResponse> {
  readonly label: string;
  private readonly client: HttpClient;
  private readonly headers: Record<string, string>;
  private readonly path: string;

  constructor(
    private readonly config: OtlpExporterConfig,
    private readonly serializer: LogsSerializer,
  ) {
    const url = new URL(config.otlpEndpoint);
    this.label = `otlp exporter '${config.id}' (${url.origin}${url.pathname})`;
    this.path = `${url.pathname}${url.search}`;
    this.client = new HttpClient(url, { maxSockets: config.concurrency + 1, timeoutMs: config.requestTimeoutMs, trustAllSsl: config.trustAllSsl, caCertificate: config.caCertificate });
    const contentType = config.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
    this.headers = { ...lowerCased(config.headers), 'content-type': contentType };
  }

  /** An empty ExportLogsServiceRequest is valid OTLP: it proves the endpoint and the credentials. */
  private async probe(): Promise<Decision> {
    const encoded = this.serializer.serializeRequest([]) ?? new Uint8Array(0);
    const http = await this.client.request('POST', this.path, this.headers, Buffer.from(encoded));
    return decideOtlpResponse({ http }, 0, this.label);
  }

  check(): Promise<void> {
    return checkWithRetries(this.config, this.label, () => this.probe());
  }

  async send(request: OtlpRequest): Promise<OtlpResponse> {
    const headers = this.config.compression === 'gzip' ? { ...this.headers, 'content-encoding': 'gzip' } : this.headers;
    const http = await this.client.request('POST', this.path, headers, request.wire);
    const response: OtlpResponse = { http };
    if (http.status >= 200 && http.status < 300 && http.body.length > 0) {
      response.partialSuccess = this.serializer.deserializeResponse(http.body).partialSuccess;
    }
    return response;
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}
