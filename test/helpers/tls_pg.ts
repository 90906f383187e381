import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/demo/embedded_pg.js';
import { tempDir } from './cli.js';

/** Test PKI made with the openssl CLI at test time (nothing committed, nothing downloaded). */
export interface TestPki {
  dir: string;
  ca: string;
  /** A second CA that signed nothing the servers present. */
  otherCa: string;
  server: { cert: string; key: string };
  /** Signed by `ca`, but for db.example.invalid only: verify-full to 127.0.0.1 must fail. */
  wrongHost: { cert: string; key: string };
  /** CN=certuser, for pg_hba's `cert` method. */
  client: { cert: string; key: string; encryptedKey: string };
  keyPassphrase: string;
}

export const CERT_USER = 'certuser';

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSignedCa(dir: string, name: string, cn: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '36500', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function signed(dir: string, name: string, cn: string, ext: string): void {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '36500', '-extfile', `${name}.ext`]);
}

export function makePki(): TestPki {
  const dir = tempDir('pki');
  const keyPassphrase = 'client-key-passphrase';
  selfSignedCa(dir, 'ca', 'logship test CA');
  selfSignedCa(dir, 'other-ca', 'some other CA');
  signed(dir, 'server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'wrong', 'db.example.invalid', 'subjectAltName=DNS:db.example.invalid\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'client', CERT_USER, 'extendedKeyUsage=clientAuth\n');
  openssl(dir, ['pkcs8', '-topk8', '-in', 'client.key', '-out', 'client-enc.key', '-passout', `pass:${keyPassphrase}`, '-v2', 'aes-256-cbc']);
  const f = (n: string) => path.join(dir, n);
  return {
    dir, ca: f('ca.crt'), otherCa: f('other-ca.crt'),
    server: { cert: f('server.crt'), key: f('server.key') },
    wrongHost: { cert: f('wrong.crt'), key: f('wrong.key') },
    client: { cert: f('client.crt'), key: f('client.key'), encryptedKey: f('client-enc.key') },
    keyPassphrase,
  };
}

/**
 * A PostgreSQL that accepts TLS connections only (pg_hba.conf has only hostssl lines): password
 * logins for everyone, certificate logins (`cert`) for certuser. `cert` picks the server's certificate.
 */
export async function startTlsPostgres(pki: TestPki, cert: { cert: string; key: string }): Promise<RunningPostgres> {
  const server = await startEmbeddedPostgres({
    flags: ['-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key', '-c', 'ssl_ca_file=root.crt', '-c', 'max_connections=50', '-c', 'shared_buffers=32MB'],
    prepare: (data) => {
      // As root, PostgreSQL runs as the user owning its data directory, and wants its key
      // readable by that user only.
      const { uid, gid } = fs.statSync(data);
      const put = (name: string, from: string, mode: number) => {
        const to = path.join(data, name);
        fs.copyFileSync(from, to);
        fs.chownSync(to, uid, gid);
        fs.chmodSync(to, mode);
      };
      put('server.crt', cert.cert, 0o644);
      put('server.key', cert.key, 0o600);
      put('root.crt', pki.ca, 0o644);
      fs.writeFileSync(path.join(data, 'pg_hba.conf'), [
        `hostssl all ${CERT_USER} 127.0.0.1/32 cert`,
        `hostssl all ${CERT_USER} ::1/128 cert`,
        'hostssl all all 127.0.0.1/32 scram-sha-256',
        'hostssl all all ::1/128 scram-sha-256',
        '',
      ].join('\n'));
    },
  });
  return server;
}
