import { randomUUID } from 'node:crypto';
import { checkWithRetries } from '../delivery/check.js';
import type { Decision } from '../delivery/decision.js';
import { HttpClient } from '../delivery/http_client.js';
import type { DeliveryService } from '../delivery/types.js';
import { AckPoller } from './ack_poller.js';
import type { SplunkExporterConfig } from './config.js';
import type { HecRequest } from './request_builder.js';
import { decideHecResponse, parseHecReply, type HecResponse } from './retry.js';

const EVENT_PATH = '/services/collector/event';

/** HEC has no official Node SDK for sending events, so this is a plain keep-alive HTTP client. */
export class HecService implements DeliveryService<HecRequest, HecResponse> {
  readonly label: string;
  private readonly client: HttpClient;
  private readonly headers: Record<string, string>;
  private readonly acks: AckPoller | null;

  constructor(private readonly config: SplunkExporterConfig) {
    this.label = `splunk exporter '${config.id}' (${config.host})`;
    this.client = new HttpClient(new URL(config.host), {
      maxSockets: config.concurrency + 1, timeoutMs: config.requestTimeoutMs, trustAllSsl: config.trustAllSsl, caCertificate: config.caCertificate,
    });
    this.headers = { authorization: `Splunk ${config.token}`, 'content-type': 'application/json' };
    if (config.useAck) {
      // Ack ids are per channel; each worker thread gets its own channel unless one is configured.
      const channel = config.channel ?? randomUUID();
      this.headers['x-splunk-request-channel'] = channel;
      this.acks = new AckPoller(this.client, this.headers, channel, config.ackPollIntervalMs, config.ackTimeoutMs);
    } else this.acks = null;
  }

  /**
   * An empty POST: HEC answers 400 "No data" (code 5) to a valid token and 401/403 to a bad one,
   * without indexing anything (the probe AWS Firehose uses too).
   */
  async probe(): Promise<Decision> {
    const http = await this.client.request('POST', EVENT_PATH, this.headers, Buffer.alloc(0));
    const reply = parseHecReply(http.body);
    if (http.status !== 400 || reply.code !== 5) return decideHecResponse({ http, reply, useAck: false }, 0, this.label);
    if (!this.acks) return { kind: 'ok' };
    // With useAck, also ask the ack endpoint once: a token without acknowledgement answers code 14.
    const ack = await this.client.request('POST', '/services/collector/ack', this.headers, Buffer.from('{"acks":[0]}'));
    if (ack.status === 200) return { kind: 'ok' };
    return decideHecResponse({ http: ack, reply: parseHecReply(ack.body), useAck: true }, 0, this.label);
  }

  check(): Promise<void> {
    return checkWithRetries(this.config, this.label, () => this.probe());
  }

  async send(request: HecRequest): Promise<HecResponse> {
    const headers = this.config.compression === 'gzip' ? { ...this.headers, 'content-encoding': 'gzip' } : this.headers;
    const http = await this.client.request('POST', EVENT_PATH, headers, request.wire);
    const reply = parseHecReply(http.body);
    const response: HecResponse = { http, reply, useAck: this.acks !== null };
    if (this.acks && http.status >= 200 && http.status < 300) {
      if (typeof reply.ackId === 'number') response.acked = await this.acks.wait(reply.ackId);
    }
    return response;
  }

  async close(): Promise<void> {
    this.acks?.close();
    this.client.close();
  }
}
