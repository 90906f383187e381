import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

const SCHEMA_DIR = fileURLToPath(new URL('../../../fixtures/otlp/', import.meta.url));

/** The OTLP logs schema from fixtures/otlp, loaded once. */
function loadSchema(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(SCHEMA_DIR, target));
  root.loadSync(['opentelemetry/proto/collector/logs/v1/logs_service.proto', 'google/rpc/status.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}
const schema = loadSchema();
const ExportRequest = schema.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
const ExportResponse = schema.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');
const Status = schema.lookupType('google.rpc.Status');

/** One log record as the collector decoded it, either encoding normalised to the same shape. */
export interface OtlpRecord {
  /** Nanoseconds since the epoch, exactly, as a decimal string. */
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: unknown;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope: string;
  protocol: 'protobuf' | 'json';
}

type AnyValueJson = { stringValue?: string; boolValue?: boolean; intValue?: string | number | protobuf.Long; doubleValue?: number; arrayValue?: { values?: AnyValueJson[] }; kvlistValue?: { values?: KeyValueJson[] }; bytesValue?: unknown };
type KeyValueJson = { key: string; value?: AnyValueJson };

function anyValue(v: AnyValueJson | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(typeof v.intValue === 'object' ? v.intValue.toString() : v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.kvlistValue) return keyValues(v.kvlistValue.values);
  return v.bytesValue;
}

function keyValues(list: KeyValueJson[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

const SEVERITY_NAMES = (schema.lookupEnum('opentelemetry.proto.logs.v1.SeverityNumber').values) as Record<string, number>;

/**
 * An OpenTelemetry Collector's OTLP/HTTP logs receiver: `POST /v1/logs` with
 * `application/x-protobuf` (decoded with the real schema via protobufjs) or `application/json`
 * (OTLP/JSON: camelCase, 64-bit integers as strings, enums as numbers), gzip bodies, a required
 * authorization header (401 with a google.rpc.Status in the request's encoding), a body limit
 * (413), a whole request refused with 400 when one record is unacceptable (`refuse`), and partial success: records matching `reject` are not kept and the response's
 * `partial_success` counts them, as the OTLP spec has collectors do.
 */
export class OtlpServer extends PlatformEndpoint {
  readonly records: OtlpRecord[] = [];
  reject: (r: OtlpRecord) => boolean = () => false;
  /** A request holding a record that matches is refused whole with 400 (a record the collector cannot take). */
  refuse: (r: OtlpRecord) => boolean = () => false;
  exportRequests = 0;

  constructor(
    readonly authorization: { name: string; value: string },
    readonly options: { maxBodyBytes?: number; path?: string } = {},
  ) {
    super();
  }

  protected handle(r: ReceivedRequest): Answer {
    return serve(this, r);
  }

  keys(keyAttribute = 'logship_key'): string[] {
    return this.records.map((r) => String(r.attributes[keyAttribute]));
  }

  get endpoint(): string {
    return `${this.url}${this.options.path ?? '/v1/logs'}`;
  }
}

function serve(server: OtlpServer, r: ReceivedRequest): Answer {
  const type = String(r.headers['content-type'] ?? '');
  const json = type.startsWith('application/json');
  const status = (http: number, code: number, message: string): Answer => json
    ? { status: http, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, message }) }
    : { status: http, headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from(Status.encode(Status.create({ code, message })).finish()) };
  if (r.method !== 'POST' || r.path !== (server.options.path ?? '/v1/logs')) return status(404, 5, `${r.method} ${r.path} not found`);
  if (r.headers[server.authorization.name.toLowerCase()] !== server.authorization.value) return status(401, 16, 'invalid or missing authorization');
  if (!json && !type.startsWith('application/x-protobuf')) return status(415, 3, `unsupported content type ${type}`);
  if (r.body.length > (server.options.maxBodyBytes ?? 20 * 1024 * 1024)) return status(413, 8, 'request body too large');
  let decoded: { resourceLogs?: { resource?: { attributes?: KeyValueJson[] }; scopeLogs?: { scope?: { name?: string }; logRecords?: Record<string, unknown>[] }[] }[] };
  try {
    decoded = json
      ? JSON.parse(r.body.toString('utf8'))
      : ExportRequest.toObject(ExportRequest.decode(r.body), { longs: String, enums: Number, defaults: true }) as typeof decoded;
  } catch (err) {
    return status(400, 3, `cannot decode the request: ${(err as Error).message}`);
  }
  server.exportRequests++;
  let rejected = 0;
  const accepted: OtlpRecord[] = [];
  for (const rl of decoded.resourceLogs ?? []) {
    const resource = keyValues(rl.resource?.attributes);
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        const sev = lr.severityNumber;
        const record: OtlpRecord = {
          timeUnixNano: String(lr.timeUnixNano ?? '0'),
          observedTimeUnixNano: String(lr.observedTimeUnixNano ?? '0'),
          severityNumber: typeof sev === 'string' ? SEVERITY_NAMES[sev] ?? -1 : Number(sev ?? 0),
          severityText: String(lr.severityText ?? ''),
          body: anyValue(lr.body as AnyValueJson),
          attributes: keyValues(lr.attributes as KeyValueJson[]),
          resource,
          scope: sl.scope?.name ?? '',
          protocol: json ? 'json' : 'protobuf',
        };
        if (server.refuse(record)) return status(400, 3, `log record ${String(record.attributes.logship_key)}: invalid attribute value`);
        if (server.reject(record)) rejected++;
        else accepted.push(record);
      }
    }
  }
  server.records.push(...accepted);
  const partial = rejected > 0 ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage: `${rejected} log records rejected: attribute value too long` } } : {};
  if (json) return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(partial) };
  return { status: 200, headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from(ExportResponse.encode(ExportResponse.create(partial)).finish()) };
}
