import crypto from 'node:crypto';
import fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { ConfigError } from '../core/errors.js';
import { registerSecret } from '../core/secrets.js';

/**
 * libpq's sslmode values, with libpq's meaning (https://www.postgresql.org/docs/current/libpq-ssl.html).
 * node-postgres gives prefer/require/verify-ca the meaning of verify-full (and prints a warning
 * saying so), so a URL copied from psql or JDBC with `sslmode=require` failed on a self-signed
 * certificate. Everything TLS is therefore decided here and handed to pg as an explicit `ssl`.
 */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** URL parameters pg-connection-string would act on itself (and warn about): taken out of the URL. */
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'ssl', 'uselibpqcompat', 'sslnegotiation'];

export type Ssl = false | ConnectionOptions;

/** A second attempt with other TLS settings, after a first attempt failed in a way `when` recognises. */
export interface Fallback {
  ssl: Ssl;
  when: (err: unknown) => boolean;
}

export interface PgTarget {
  /** pg client config with `ssl` always explicit: pg would otherwise read PGSSLMODE with its own meaning. */
  config: pg.ClientConfig & { ssl: Ssl };
  mode: SslMode;
  /** prefer: plain after the server refuses TLS; allow: TLS after the server rejects plain. */
  fallback: Fallback | undefined;
  /** The config option the URL came from ('source.url', 'queue.url'), for messages. */
  option: string;
  /** Where the root certificate came from ('sslrootcert=/x in source.url', 'PGSSLROOTCERT=/x'), if any. */
  rootCertFrom: string | undefined;
}

export interface TargetInput {
  url: string | undefined;
  /** Given apart from the URL; goes into it percent-encoded (see `withPassword`). */
  password?: string;
  /** 'source.url' or 'queue.url': named in every message. */
  option: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Turns a postgres:// URL (or none: libpq's PG* variables) and the environment into pg's client
 * config. URL parameters win over PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY, as in libpq.
 * Unreadable files and bad values are configuration errors naming the parameter or variable.
 */
export function pgTarget(input: TargetInput): PgTarget {
  const env = input.env ?? process.env;
  const { option } = input;
  const u = input.url === undefined ? undefined : new URL(input.url);
  // Read before they are taken out of the URL below.
  const params = new Map(TLS_PARAMS.map((name) => [name, u?.searchParams.get(name) ?? undefined]));
  const param = (name: string) => params.get(name);
  const setting = (name: string, envName: string) => {
    const fromUrl = param(name);
    if (fromUrl !== undefined && fromUrl !== '') return { value: fromUrl, from: `${name} in ${option}` };
    const fromEnv = env[envName];
    return fromEnv ? { value: fromEnv, from: envName } : undefined;
  };

  const rootCert = setting('sslrootcert', 'PGSSLROOTCERT');
  const mode = sslMode(param('sslmode'), param('ssl'), env.PGSSLMODE, rootCert?.value === 'system', option);
  const host = u ? (u.searchParams.get('host') ?? u.hostname) : (env.PGHOST ?? '');
  const password = input.password;
  const base: pg.ClientConfig = {};
  if (u) {
    for (const name of TLS_PARAMS) u.searchParams.delete(name);
    base.connectionString = withPassword(u, password);
  } else if (password !== undefined) {
    base.password = password;
  }
  const negotiation = param('sslnegotiation');
  if (negotiation === 'direct' || negotiation === 'postgres') base.sslnegotiation = negotiation;

  // libpq never uses TLS over a Unix socket, whatever sslmode says.
  if (mode === 'disable' || host.startsWith('/')) return { config: { ...base, ssl: false }, mode, fallback: undefined, option, rootCertFrom: undefined };

  const tls: ConnectionOptions = {};
  if (rootCert && rootCert.value !== 'system') tls.ca = readPem(rootCert, 'CERTIFICATE', option);
  const cert = setting('sslcert', 'PGSSLCERT');
  const key = setting('sslkey', 'PGSSLKEY');
  if (cert) tls.cert = readPem(cert, 'CERTIFICATE', option);
  if (key) {
    tls.key = readPem(key, 'PRIVATE KEY', option);
    const passphrase = param('sslpassword');
    if (passphrase !== undefined) {
      registerSecret(passphrase);
      tls.passphrase = passphrase;
    }
    checkKey(tls.key as string, passphrase, key.from, option);
  }
  if (cert && !key) throw new ConfigError(option, `${cert.from} is set but sslkey is not: set sslkey in the URL or PGSSLKEY to the client certificate's private key`);
  if (key && !cert) throw new ConfigError(option, `${key.from} is set but sslcert is not: set sslcert in the URL or PGSSLCERT to the client certificate`);

  const rootCertFrom = rootCert ? `${rootCert.from}=${rootCert.value}` : undefined;
  // libpq: with a root certificate given, require verifies the chain as verify-ca does.
  const verify = mode === 'prefer' || mode === 'allow' ? 'none' : mode === 'verify-full' ? 'full' : mode === 'verify-ca' || (mode === 'require' && tls.ca !== undefined) ? 'ca' : 'none';
  if (verify === 'none') tls.rejectUnauthorized = false;
  else {
    // Without sslrootcert the system's CA store is used (Node's default): libpq would look for
    // root.crt in the home directory's .postgresql folder instead, but pg has always verified against the system store, and
    // hosted servers with publicly signed certificates (Neon, Supabase) rely on that.
    tls.rejectUnauthorized = true;
    if (verify === 'ca') tls.checkServerIdentity = () => undefined;
  }
  // prefer and allow never verify: a check that fails would only make them fall back to plain text.
  if (mode === 'prefer') return { config: { ...base, ssl: tls }, mode, fallback: { ssl: false, when: refusedTls }, option, rootCertFrom };
  if (mode === 'allow') return { config: { ...base, ssl: false }, mode, fallback: { ssl: tls, when: rejectedPlain }, option, rootCertFrom };
  return { config: { ...base, ssl: tls }, mode, fallback: undefined, option, rootCertFrom };
}

function sslMode(fromUrl: string | undefined, legacySsl: string | undefined, fromEnv: string | undefined, systemRoots: boolean, option: string): SslMode {
  let mode: string | undefined;
  let from: string;
  if (fromUrl !== undefined) {
    [mode, from] = [fromUrl, `sslmode in ${option}`];
  } else if (legacySsl !== undefined) {
    // pg's own `ssl=` URL parameter: true verified fully (as in JDBC), no-verify only encrypted.
    from = `ssl in ${option}`;
    mode = { true: 'verify-full', 1: 'verify-full', false: 'disable', 0: 'disable', 'no-verify': 'require' }[legacySsl];
    if (mode === undefined) throw new ConfigError(option, `ssl=${legacySsl} is not understood: use sslmode=${SSL_MODES.join('|')}`);
  } else if (fromEnv) {
    [mode, from] = [fromEnv, 'PGSSLMODE'];
  } else {
    // libpq 16: sslrootcert=system makes verify-full the default.
    return systemRoots ? 'verify-full' : 'prefer';
  }
  if (mode === 'no-verify') mode = 'require'; // pg's name for it
  if (!(SSL_MODES as readonly string[]).includes(mode)) throw new ConfigError(option, `${from} must be one of ${SSL_MODES.join(', ')} (got ${JSON.stringify(mode)})`);
  // libpq 16 refuses weaker modes with the system store: any publicly trusted certificate would do.
  if (systemRoots && mode !== 'verify-full') throw new ConfigError(option, `sslrootcert=system needs sslmode=verify-full (got ${from} ${mode}): any server with a publicly signed certificate would pass a weaker check`);
  return mode as SslMode;
}

function readPem(s: { value: string; from: string }, kind: string, option: string): string {
  let text: string;
  try {
    text = fs.readFileSync(s.value, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError(option, `${s.from}=${s.value}: cannot read it (${why})`);
  }
  if (!text.includes(`-----BEGIN `) || !text.includes(kind.split(' ').pop()!)) throw new ConfigError(option, `${s.from}=${s.value}: not a PEM file holding a ${kind.toLowerCase()}`);
  return text;
}

/** A key that cannot be decrypted fails inside the TLS handshake with OpenSSL's words: say it here. */
function checkKey(pem: string, passphrase: string | undefined, from: string, option: string): void {
  try {
    crypto.createPrivateKey({ key: pem, passphrase: passphrase ?? '' });
  } catch {
    const hint = passphrase === undefined ? 'it is encrypted: give its passphrase as sslpassword in the URL' : 'sslpassword does not decrypt it';
    throw new ConfigError(option, `${from}: cannot load the private key (${hint})`);
  }
}

/**
 * A password given apart from the URL goes into it percent-encoded: pg's URL parser would let the
 * URL's empty password override a separate one.
 */
function withPassword(u: URL, password: string | undefined): string {
  if (password !== undefined) {
    const encoded = encodeURIComponent(password);
    registerSecret(encoded);
    u.password = encoded;
  }
  return u.toString();
}

/** pg's words when the server answers the SSLRequest with 'N'. */
export function refusedTls(err: unknown): boolean {
  return /does not support SSL/i.test((err as Error | null)?.message ?? '');
}

/** pg_hba.conf has only hostssl lines for this client: 28000 with "no encryption". */
function rejectedPlain(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return e?.code === '28000' && /no encryption/i.test(e.message ?? '');
}

const UNTRUSTED = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE']);

/**
 * One line saying what failed in TLS terms and what to set, or undefined when the error is not
 * about TLS. Node's codes are in `err.code`; pg reports a refused SSLRequest only in words.
 */
export function explainTlsError(err: unknown, target: PgTarget): string | undefined {
  const e = err as { code?: string; message?: string; reason?: string } | null;
  const code = e?.code ?? '';
  const detail = e?.message ?? String(err);
  if (UNTRUSTED.has(code)) {
    if (target.rootCertFrom) return `the server's certificate is not signed by the CA in ${target.rootCertFrom} (${detail}): point it at the CA (or bundle) that signed the server's certificate`;
    return `the server's certificate is not signed by a trusted CA (${detail}): set sslrootcert=/path/to/ca.pem in the URL or PGSSLROOTCERT, or use sslmode=require to encrypt without verifying`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the server's certificate does not name the host connected to (${e?.reason ?? detail}): connect with a host name the certificate names, or use sslmode=verify-ca to verify the CA only`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the server's certificate is not valid now (${detail}): renew it on the server`;
  if (refusedTls(err)) return `the server refuses TLS (sslmode=${target.mode}): enable ssl on the server, or use sslmode=prefer to fall back to an unencrypted connection`;
  return undefined;
}

/**
 * Connects with the target's TLS settings, and once more with its fallback's when the first
 * attempt fails as the fallback expects (libpq's prefer and allow, which pg does not have: it
 * cannot go on in plain text on a socket whose SSLRequest was refused). Returns the connected
 * client and the `ssl` that worked, so a pool can be given settings that need no second try.
 */
export async function openClient(target: PgTarget, extra: pg.ClientConfig = {}): Promise<{ client: pg.Client; ssl: Ssl }> {
  const attempt = async (ssl: Ssl) => {
    const client = new pg.Client({ ...target.config, ...extra, ssl });
    // An idle-connection error would otherwise crash the process as an unhandled 'error' event.
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  };
  try {
    return { client: await attempt(target.config.ssl), ssl: target.config.ssl };
  } catch (err) {
    const fallback = target.fallback;
    if (!fallback?.when(err)) throw err;
    return { client: await attempt(fallback.ssl), ssl: fallback.ssl };
  }
}

/**
 * The target with the `ssl` a first connection settled on: for a pool (pg-boss), whose
 * connections pg opens itself and could not fall back.
 */
export function settled(target: PgTarget, ssl: Ssl): pg.ClientConfig {
  return { ...target.config, ssl };
}
