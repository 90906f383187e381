import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';

/** A self-signed certificate for 127.0.0.1 (made with the machine's openssl, per test run). */
export interface TestCertificate {
  key: string;
  cert: string;
  /** A CA bundle for NODE_EXTRA_CA_CERTS: the certificate plus whatever bundle was already set. */
  bundleFile: string;
}

export function makeCertificate(dir: string): TestCertificate {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const cert = fs.readFileSync(certFile, 'utf8');
  const existing = process.env.NODE_EXTRA_CA_CERTS && fs.existsSync(process.env.NODE_EXTRA_CA_CERTS) ? fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS, 'utf8') : '';
  const bundleFile = path.join(dir, 'ca-bundle.pem');
  fs.writeFileSync(bundleFile, `${existing}${existing.endsWith('\n') || existing === '' ? '' : '\n'}${cert}`);
  return { key: fs.readFileSync(keyFile, 'utf8'), cert, bundleFile };
}

export interface ServicePrincipal { tenantId: string; clientId: string; clientSecret: string }

/** 1 MB per call, compressed or not (the Logs Ingestion API answers 413 above). */
export const CALL_LIMIT = 1024 * 1024;

const azureError = (status: number, code: string, message: string, headers?: Record<string, string>): Answer => ({ status, headers, body: JSON.stringify({ error: { code, message } }) });

/**
 * Plays Microsoft Entra ID (OpenID discovery and the client-credentials token endpoint) and the
 * Logs Ingestion API (`POST /dataCollectionRules/{ruleId}/streams/{stream}?api-version=2023-01-01`)
 * over HTTPS, as the real services do: tokens only for the right client secret and the monitor
 * audience, bearer tokens checked per call, gzip bodies, 1 MB per call (413), a JSON array of
 * objects each with a valid `TimeGenerated`, 204 on success, errors as `{"error":{code,message}}`.
 */
export class AzureMonitorServer extends PlatformEndpoint {
  /** Rows accepted per stream, in arrival order. */
  readonly rows: Record<string, unknown>[] = [];
  readonly tokenRequests: URLSearchParams[] = [];
  /** Bodies (decompressed) of accepted calls: lengths, to show the 1 MB cut. */
  readonly callSizes: number[] = [];
  private readonly tokens = new Set<string>();

  constructor(
    tls: { key: string; cert: string },
    readonly principal: ServicePrincipal,
    readonly ruleId: string,
    readonly streamName: string,
    readonly audience = 'https://monitor.azure.com',
  ) {
    super(tls);
  }

  keys(keyAttribute = 'logship_key'): string[] {
    return this.rows.map((r) => r[keyAttribute] as string);
  }

  protected handle(r: ReceivedRequest): Answer {
    const tenant = this.principal.tenantId;
    if (r.method === 'GET' && r.path === `/${tenant}/v2.0/.well-known/openid-configuration`) {
      const base = `${this.url}/${tenant}`;
      return { status: 200, body: JSON.stringify({ token_endpoint: `${base}/oauth2/v2.0/token`, authorization_endpoint: `${base}/oauth2/v2.0/authorize`, issuer: `${base}/v2.0`, end_session_endpoint: `${base}/oauth2/v2.0/logout`, jwks_uri: `${base}/discovery/v2.0/keys`, response_types_supported: ['code', 'id_token', 'token'], token_endpoint_auth_methods_supported: ['client_secret_post'] }) };
    }
    if (r.method === 'POST' && r.path.endsWith('/oauth2/v2.0/token')) return this.token(r);
    const m = /^\/dataCollectionRules\/([^/]+)\/streams\/([^/]+)$/.exec(r.path);
    if (r.method === 'POST' && m) return this.ingest(r, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
    return azureError(404, 'NotFound', `no route for ${r.method} ${r.path}`);
  }

  private token(r: ReceivedRequest): Answer {
    const form = new URLSearchParams(r.body.toString('utf8'));
    this.tokenRequests.push(form);
    if (!r.path.startsWith(`/${this.principal.tenantId}/`)) return { status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: `AADSTS90002: Tenant '${r.path.split('/')[1]}' not found.` }) };
    if (form.get('grant_type') !== 'client_credentials') return { status: 400, body: JSON.stringify({ error: 'unsupported_grant_type', error_description: 'AADSTS70003: unsupported grant type' }) };
    if (form.get('client_id') !== this.principal.clientId) return { status: 400, body: JSON.stringify({ error: 'unauthorized_client', error_description: `AADSTS700016: Application with identifier '${form.get('client_id')}' was not found in the directory.` }) };
    if (form.get('client_secret') !== this.principal.clientSecret) return { status: 401, body: JSON.stringify({ error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.' }) };
    if (!(form.get('scope') ?? '').split(' ').includes(`${this.audience}/.default`)) return { status: 400, body: JSON.stringify({ error: 'invalid_scope', error_description: `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.` }) };
    const token = crypto.randomBytes(24).toString('base64url');
    this.tokens.add(token);
    return { status: 200, body: JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token }) };
  }

  private ingest(r: ReceivedRequest, ruleId: string, stream: string): Answer {
    const auth = r.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !this.tokens.has(auth.slice(7))) return azureError(401, 'InvalidToken', 'The access token is missing or invalid.');
    if (r.query.get('api-version') !== '2023-01-01') return azureError(400, 'InvalidApiVersion', `api-version ${r.query.get('api-version')} is not supported`);
    if (ruleId !== this.ruleId) return azureError(404, 'NotFound', `Data collection rule with immutable Id '${ruleId}' not found.`);
    if (stream !== this.streamName) return azureError(404, 'InvalidStream', `Stream '${stream}' is not declared in data collection rule '${ruleId}'.`);
    if (r.raw.length > CALL_LIMIT || r.body.length > CALL_LIMIT) return azureError(413, 'ContentLengthLimitExceeded', `The request body of ${r.body.length} bytes exceeds the 1 MB limit.`);
    if (!String(r.headers['content-type'] ?? '').startsWith('application/json')) return azureError(415, 'UnsupportedMediaType', 'Content-Type must be application/json.');
    let rows: unknown;
    try {
      rows = JSON.parse(r.body.toString('utf8'));
    } catch {
      return azureError(400, 'InvalidContent', 'The request body is not valid JSON.');
    }
    if (!Array.isArray(rows) || rows.some((x) => x === null || typeof x !== 'object' || Array.isArray(x))) return azureError(400, 'InvalidContent', 'The request body must be a JSON array of objects.');
    for (const row of rows as Record<string, unknown>[]) {
      if (typeof row.TimeGenerated !== 'string' || Number.isNaN(Date.parse(row.TimeGenerated))) return azureError(400, 'InvalidContent', `TimeGenerated ${JSON.stringify(row.TimeGenerated)} is not a datetime.`);
    }
    this.rows.push(...(rows as Record<string, unknown>[]));
    this.callSizes.push(r.body.length);
    return { status: 204 };
  }
}
