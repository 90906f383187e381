import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { ReceivedRequest } from '../platform_server.js';

function toBytes(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === 'string') return d;
  return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);
}

class Sha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret ? createHmac('sha256', toBytes(secret)) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

export interface AwsTestCredentials { accessKeyId: string; secretAccessKey: string }

/**
 * Verifies a request's SigV4 signature as AWS does: re-signs the request's signed headers and
 * body with the secret of the access key it names and compares. Returns the AWS error `__type`
 * and message to answer with, or null when the signature is valid.
 */
export async function verifySigV4(r: ReceivedRequest, known: AwsTestCredentials[], service: string): Promise<{ type: string; message: string } | null> {
  const auth = String(r.headers.authorization ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(auth);
  if (!m) return { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const [, keyId, , region, svc, signedHeaders] = m as unknown as string[];
  const creds = known.find((c) => c.accessKeyId === keyId);
  if (!creds || svc !== service) return { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
  const headers: Record<string, string> = {};
  for (const h of signedHeaders!.split(';')) headers[h] = String(r.headers[h] ?? '');
  const amzDate = headers['x-amz-date'] ?? '';
  const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const signer = new SignatureV4({ credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: headers['x-amz-security-token'] }, region: region!, service: svc!, sha256: Sha256 });
  const [hostname, port] = (headers.host ?? '').split(':');
  const signed = await signer.sign({ method: r.method, protocol: 'http:', hostname: hostname!, port: port ? Number(port) : undefined, path: r.path, query: Object.fromEntries(r.query), headers, body: r.raw }, { signingDate });
  if (signed.headers.authorization !== auth) {
    return { type: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.' };
  }
  return null;
}
