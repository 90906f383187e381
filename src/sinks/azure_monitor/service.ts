import type { TokenCredential } from '@azure/identity';
import type { LogsIngestionClient } from '@azure/monitor-ingestion';
import { checkWithRetries } from '../delivery/check.js';
import type { Decision } from '../delivery/decision.js';
import type { AzureMonitorExporterConfig } from './config.js';
import type { LogsRequest } from './request_builder.js';
import type { CallFailure, UploadOutcome } from './retry.js';

/**
 * The official Logs Ingestion client with its own retries off (logship decides what to resend,
 * per failed call), and the real Entra ID credential: a service principal when configured, else
 * the default chain.
 */
export class AzureMonitorService {
  readonly label: string;

  private constructor(
    private readonly config: AzureMonitorExporterConfig,
    private readonly credential: TokenCredential,
    private readonly client: LogsIngestionClient,
  ) {
    this.label = `azure-monitor exporter '${config.id}' (${config.endpoint})`;
  }

  static async create(config: AzureMonitorExporterConfig): Promise<AzureMonitorService> {
    const identity = await import('@azure/identity');
    const { LogsIngestionClient } = await import('@azure/monitor-ingestion');
    const sp = config.servicePrincipal;
    // The token requests' own retries off too: check() and each upload already retry an
    // unreachable Entra ID with logship's backoff; the credential's three tries under each of
    // ours multiplied the wait (and a refusal is final either way).
    const noRetries = { retryOptions: { maxRetries: 0 } };
    const credential: TokenCredential = sp
      ? new identity.ClientSecretCredential(sp.tenantId, sp.clientId, sp.clientSecret, { ...noRetries, authorityHost: config.authorityHost, disableInstanceDiscovery: config.authorityHost !== 'https://login.microsoftonline.com' })
      : new identity.DefaultAzureCredential({ ...noRetries, authorityHost: config.authorityHost });
    const client = new LogsIngestionClient(config.endpoint, credential, { audience: config.audience, retryOptions: { maxRetries: 0 } });
    return new AzureMonitorService(config, credential, client);
  }

  /**
   * A token for the ingestion audience, so wrong credentials fail before any row is read (at once:
   * Entra ID refused them); an unreachable or failing Entra ID is retried like a request.
   */
  async check(): Promise<void> {
    const who = this.config.servicePrincipal ? `clientId ${this.config.servicePrincipal.clientId} in tenant ${this.config.servicePrincipal.tenantId}` : 'the default Azure credential chain';
    await checkWithRetries(this.config, this.label, async (): Promise<Decision> => {
      try {
        await this.credential.getToken(`${this.config.audience}/.default`, { abortSignal: AbortSignal.timeout(this.config.requestTimeoutMs) });
        return { kind: 'ok' };
      } catch (err) {
        const reason = `cannot get a token from ${this.config.authorityHost} for ${who}: ${describeAuthError(err)}`;
        return isRefusal(err) ? { kind: 'fatal', reason } : { kind: 'retry', reason };
      }
    });
  }

  /** One upload: the SDK's per-call failures (AggregateLogsUploadError) come back as data, not thrown. */
  async upload(request: LogsRequest): Promise<UploadOutcome> {
    try {
      await this.client.upload(this.config.ruleId, this.config.streamName, request.logs, { maxConcurrency: 1, abortSignal: AbortSignal.timeout(this.config.requestTimeoutMs) });
      return { failures: [] };
    } catch (err) {
      const errors = (err as { errors?: CallFailure[] }).errors;
      if ((err as Error).name === 'AggregateLogsUploadError' || Array.isArray(errors)) return { failures: errors ?? [] };
      throw err;
    }
  }

  async close(): Promise<void> {}
}

/** OAuth errors by which Entra ID refuses the credentials or the request: retrying cannot help. */
const REFUSALS = /\b(invalid_client|unauthorized_client|invalid_request|invalid_grant|invalid_scope|invalid_resource|unsupported_grant_type|AADSTS\d+)\b/;

/** MSAL's words for an authority it could not reach (it wraps them in CredentialUnavailableError). */
const UNREACHABLE = /\b(endpoints_resolution_error|network_error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN)\b/;

function isRefusal(err: unknown): boolean {
  const e = err as { name?: string; message?: string; statusCode?: number; errorResponse?: { error?: string } };
  if (UNREACHABLE.test(e?.message ?? '')) return false;
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && e.statusCode !== 408 && e.statusCode !== 429) return true;
  if (e?.name === 'CredentialUnavailableError') return true;
  return REFUSALS.test(`${e?.errorResponse?.error ?? ''} ${e?.message ?? ''}`);
}

/** MSAL's and the identity library's errors: the OAuth error code and the first line of its description. */
function describeAuthError(err: unknown): string {
  const e = err as { name?: string; message?: string; statusCode?: number; errorResponse?: { error?: string; errorDescription?: string } };
  if (e?.errorResponse?.error) {
    const description = (e.errorResponse.errorDescription ?? '').split('\n')[0]!.trim();
    return [e.statusCode ? `HTTP ${e.statusCode}` : '', e.errorResponse.error, description ? `(${description})` : ''].filter(Boolean).join(' ');
  }
  const message = e?.message ?? String(err);
  // MSAL's ServerError: "invalid_client: Error(s): … - Description: AADSTS…: … - Correlation ID: …"
  const msal = /^(\w+): Error\(s\):.*?Description: (.*?)(?: - Correlation ID:.*)?$/s.exec(message);
  if (msal) return `${msal[1]} (${msal[2]!.split('\n')[0]!.trim()})`;
  return `${e?.name ?? 'Error'}: ${message.split('\n')[0]!.trim()}`;
}
