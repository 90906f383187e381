import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';
import type { AwsConnection } from './config.js';

/**
 * The options both AWS clients are built with. The SDK's own retries are off (maxAttempts 1):
 * the batched-delivery core decides what to retry per record, which a whole-call retry cannot,
 * and two retry layers would multiply the attempts. HTTP/1.1 (NodeHttpHandler) because the
 * Kinesis client's default HTTP/2 handler fails against local emulators and proxies.
 */
export async function awsClientOptions(c: AwsConnection, requestTimeoutMs: number, sessionName: string) {
  const { NodeHttpHandler } = await import('@smithy/node-http-handler');
  let credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider | undefined = c.accessKeyId
    ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretKeyId!, sessionToken: c.sessionToken }
    : undefined;
  if (c.roleArn) {
    const { fromTemporaryCredentials } = await import('@aws-sdk/credential-providers');
    credentials = fromTemporaryCredentials({
      params: { RoleArn: c.roleArn, RoleSessionName: sessionName },
      masterCredentials: credentials,
      // STS keeps its own endpoint (AWS_ENDPOINT_URL_STS to override): `endpoint` is the data service's.
      clientConfig: { region: c.region, requestHandler: new NodeHttpHandler({ connectionTimeout: 10_000 }) },
    });
  }
  return {
    region: c.region,
    endpoint: c.endpoint,
    credentials,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ requestTimeout: requestTimeoutMs, connectionTimeout: Math.min(requestTimeoutMs, 10_000) }),
  };
}

/** The parts of an AWS SDK error a decision needs. */
export interface AwsError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
}

const CREDENTIAL_ERRORS = new Set(['UnrecognizedClientException', 'InvalidSignatureException', 'IncompleteSignature', 'IncompleteSignatureException', 'AccessDeniedException', 'ExpiredTokenException', 'InvalidClientTokenId', 'MissingAuthenticationToken', 'CredentialsProviderError', 'SignatureDoesNotMatch', 'NotAuthorized']);

export function isCredentialError(err: unknown): boolean {
  const name = (err as AwsError)?.name ?? '';
  return CREDENTIAL_ERRORS.has(name) || /AccessDenied|not authorized/i.test(name);
}

/** "UnrecognizedClientException: The security token included in the request is invalid." */
export function awsErrorText(err: unknown): string {
  const e = err as AwsError & { code?: string };
  const name = e?.name ?? 'Error';
  const msg = (e?.message ?? String(err)).split('\n')[0]!;
  return msg && msg !== name && msg !== 'UnknownError' ? `${name}: ${msg}` : `${name}${e?.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : ''}`;
}
