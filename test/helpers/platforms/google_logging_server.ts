import crypto from 'node:crypto';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** LogSeverity as the REST API sends it with `enum-encoding=int`. */
export const SEVERITY_NUMBER: Record<string, number> = { DEFAULT: 0, DEBUG: 100, INFO: 200, NOTICE: 300, WARNING: 400, ERROR: 500, CRITICAL: 600, ALERT: 700, EMERGENCY: 800 };

export interface WrittenEntry {
  logName: string;
  resource: { type: string; labels?: Record<string, string> };
  insertId: string;
  timestamp: string;
  severity: number;
  jsonPayload: Record<string, unknown>;
  labels: Record<string, string>;
}

interface RpcStatus { code: number; message: string }

/** Cloud Logging's limits: 256 KiB per entry, 10 MB per request. */
const MAX_ENTRY = 256 * 1024;
const MAX_REQUEST = 10 * 1024 * 1024;

function rpcError(httpStatus: number, status: string, message: string, details?: unknown[]): Answer {
  return { status: httpStatus, body: JSON.stringify({ error: { code: httpStatus, message, status, ...(details ? { details } : {}) } }) };
}

/**
 * Cloud Logging's `entries.write` over REST on loopback. It authenticates the service account's
 * self-signed JWT (RS256, checked against the key's public half, issuer and expiry), checks the
 * project, enforces the entry and request size limits, and follows `partialSuccess`: valid
 * entries are written and the invalid ones reported in WriteLogEntriesPartialErrors, in the
 * google.rpc.Status shape the client parses. `dryRun` validates and writes nothing. Like the
 * real service it stores resent entries; `visible()` is what a query returns (entries with the
 * same log, resource, insertId and timestamp shown once).
 */
export class GoogleLoggingServer extends PlatformEndpoint {
  readonly written: WrittenEntry[] = [];
  /** Per-entry failures to inject: return a google.rpc.Status for an entry to fail it this time. */
  entryError: (entry: WrittenEntry) => RpcStatus | undefined = () => undefined;

  constructor(private readonly o: { projectId: string; clientEmail: string; publicKey: crypto.KeyObject }) {
    super();
  }

  /** What a query shows: one entry per (log, resource, insertId, timestamp). */
  visible(): WrittenEntry[] {
    const seen = new Map<string, WrittenEntry>();
    for (const e of this.written) seen.set(JSON.stringify([e.logName, e.resource.type, e.insertId, e.timestamp]), e);
    return [...seen.values()];
  }

  protected handle(r: ReceivedRequest): Answer {
    if (r.path !== '/v2/entries:write' || r.method !== 'POST') return rpcError(404, 'NOT_FOUND', `Method not found: ${r.method} ${r.path}`);
    const denied = this.authenticate(String(r.headers.authorization ?? ''));
    if (denied) return denied;
    if (r.body.length > MAX_REQUEST) return rpcError(400, 'INVALID_ARGUMENT', `Request payload size exceeds the limit: ${MAX_REQUEST} bytes.`);
    const body = JSON.parse(r.body.toString('utf8')) as { logName?: string; resource?: WrittenEntry['resource']; labels?: Record<string, string>; entries?: Partial<WrittenEntry>[]; partialSuccess?: boolean; dryRun?: boolean };
    const entries = body.entries ?? [];
    if (entries.length === 0) return rpcError(400, 'INVALID_ARGUMENT', 'No log entries specified in WriteLogEntries request.');
    const errors: Record<string, RpcStatus> = {};
    const valid: WrittenEntry[] = [];
    entries.forEach((raw, i) => {
      const logName = raw.logName ?? body.logName;
      const resource = raw.resource ?? body.resource;
      if (!logName || !resource?.type) {
        errors[i] = { code: 3, message: 'Log entry must have a log name and a monitored resource.' };
        return;
      }
      const project = /^projects\/([^/]+)\/logs\/[^/]+$/.exec(logName)?.[1];
      if (project !== this.o.projectId) {
        errors[i] = { code: 7, message: `The caller does not have permission to write to ${logName}` };
        return;
      }
      const size = Buffer.byteLength(JSON.stringify(raw));
      if (size > MAX_ENTRY) {
        errors[i] = { code: 3, message: `Log entry with size ${(size / 1024).toFixed(1)}K exceeds maximum size of 256.0K` };
        return;
      }
      const entry: WrittenEntry = { logName, resource, insertId: raw.insertId ?? '', timestamp: raw.timestamp ?? '', severity: raw.severity ?? 0, jsonPayload: raw.jsonPayload ?? {}, labels: { ...body.labels, ...raw.labels } };
      const injected = this.entryError(entry);
      if (injected) {
        errors[i] = injected;
        return;
      }
      valid.push(entry);
    });
    const failed = Object.keys(errors).length;
    if (failed > 0 && !body.partialSuccess) {
      return rpcError(400, 'INVALID_ARGUMENT', `${failed} log entries failed`, [{ '@type': 'type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors', logEntryErrors: errors }]);
    }
    if (!body.dryRun) this.written.push(...valid);
    if (failed > 0) {
      const first = Object.values(errors)[0]!;
      return rpcError(400, 'INVALID_ARGUMENT', `Log entry ${Object.keys(errors)[0]}: ${first.message}`, [{ '@type': 'type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors', logEntryErrors: errors }]);
    }
    return { status: 200, body: '{}' };
  }

  /** The service account's self-signed JWT: RS256 by the registered key, our issuer, not expired. */
  private authenticate(header: string): Answer | null {
    const unauthenticated = rpcError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(header);
    if (!m) return unauthenticated;
    const [, head, payload, signature] = m as unknown as [string, string, string, string];
    const ok = crypto.verify('RSA-SHA256', Buffer.from(`${head}.${payload}`), this.o.publicKey, Buffer.from(signature, 'base64url'));
    if (!ok) return unauthenticated;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: string; exp?: number };
    if (claims.iss !== this.o.clientEmail || (claims.exp ?? 0) * 1000 < Date.now()) return unauthenticated;
    return null;
  }
}

/** A service account key as Google issues it, with a fresh RSA key pair. */
export function makeServiceAccount(projectId: string, clientEmail = `logship@${projectId}.iam.gserviceaccount.com`): { json: string; publicKey: crypto.KeyObject; clientEmail: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const json = JSON.stringify({
    type: 'service_account', project_id: projectId, private_key_id: crypto.randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), client_email: clientEmail, client_id: '1234567890',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth', token_uri: 'http://127.0.0.1:9/token',
  });
  return { json, publicKey, clientEmail };
}
