import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import type { RunningPostgres } from '../src/demo/embedded_pg.js';
import { createKestraSchema, seedKestraLogs } from '../src/demo/seed.js';
import { parseConfig } from '../src/config/schema.js';
import { ConfigError } from '../src/core/errors.js';
import { applicationName, connect, connectSource } from '../src/source/connection.js';
import { readWithCopy } from '../src/source/copy_reader.js';
import { SourceSession } from '../src/source/session.js';
import { openClient, pgTarget } from '../src/source/tls.js';
import { openQueue, queueTarget } from '../src/run/distributed/boss.js';
import { Wakeup } from '../src/run/distributed/wakeup.js';
import { log } from '../src/core/log.js';
import { exportedDocs, runCli, tempDir, writeConfig } from './helpers/cli.js';
import { freshDatabase, isoAgo, sourceDocs } from './helpers/db.js';
import { CERT_USER, makePki, startTlsPostgres, type TestPki } from './helpers/tls_pg.js';

let pki: TestPki;
let tlsServer: RunningPostgres;
let wrongHostServer: RunningPostgres;
/** postgres://postgres:logship@127.0.0.1:<port>/postgres on the TLS-only server. */
let tlsUrl: string;
const opened: pg.Client[] = [];

beforeAll(async () => {
  pki = makePki();
  tlsServer = await startTlsPostgres(pki, pki.server);
  wrongHostServer = await startTlsPostgres(pki, pki.wrongHost);
  tlsUrl = tlsServer.url;
  const admin = await direct(tlsUrl);
  await admin.query(`CREATE ROLE ${CERT_USER} LOGIN`);
  await admin.query(`CREATE DATABASE certdb OWNER ${CERT_USER}`);
  await admin.end();
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.end().catch(() => {})));
  await tlsServer?.stop();
  await wrongHostServer?.stop();
  if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
});

/** A test's own connection to the TLS server (not through the code under test). */
async function direct(url: string, ssl: pg.ClientConfig['ssl'] = { rejectUnauthorized: false }): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, ssl });
  c.on('error', () => {});
  await c.connect();
  return c;
}

function withParams(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

async function sslOf(c: pg.Client): Promise<{ ssl: boolean; client_dn: string | null; user: string }> {
  const r = await c.query('SELECT s.ssl, s.client_dn, current_user AS user FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()');
  return r.rows[0];
}

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a failure');
}

const NO_ENV: NodeJS.ProcessEnv = {};

describe('URL and environment to pg config (tls.ts)', () => {
  const url = 'postgres://u:p@db.example.com:5433/logs?application_name=x&sslmode=require&options=-c%20search_path%3Dk';

  it('takes every TLS parameter out of the URL handed to pg, keeping the rest', () => {
    const t = pgTarget({ url, option: 'source.url', env: NO_ENV });
    const cs = new URL(t.config.connectionString!);
    expect([...cs.searchParams.keys()].sort()).toEqual(['application_name', 'options']);
    expect(cs.searchParams.get('options')).toBe('-c search_path=k');
    expect(t.mode).toBe('require');
    expect(t.config.ssl).toEqual({ rejectUnauthorized: false });
  });

  it('defaults to prefer: TLS without verification, plain text if the server refuses TLS', () => {
    const t = pgTarget({ url: 'postgres://h/db', option: 'source.url', env: NO_ENV });
    expect(t.mode).toBe('prefer');
    expect(t.config.ssl).toEqual({ rejectUnauthorized: false });
    expect(t.fallback?.ssl).toBe(false);
    expect(t.fallback?.when(new Error('The server does not support SSL connections'))).toBe(true);
    expect(t.fallback?.when(new Error('password authentication failed'))).toBe(false);
  });

  it('gives each mode libpq\'s meaning', () => {
    const mode = (m: string, extra = '') => pgTarget({ url: `postgres://h/db?sslmode=${m}${extra}`, option: 'source.url', env: NO_ENV });
    expect(mode('disable').config.ssl).toBe(false);
    const ca = mode('verify-ca', `&sslrootcert=${pki.ca}`).config.ssl as { ca: string; rejectUnauthorized: boolean; checkServerIdentity: () => unknown };
    expect(ca.rejectUnauthorized).toBe(true);
    expect(ca.ca).toContain('BEGIN CERTIFICATE');
    expect(ca.checkServerIdentity()).toBeUndefined();
    const full = mode('verify-full', `&sslrootcert=${pki.ca}`).config.ssl as Record<string, unknown>;
    expect(full.rejectUnauthorized).toBe(true);
    expect(full.checkServerIdentity).toBeUndefined();
    // libpq: require with a root certificate verifies the chain, like verify-ca.
    const req = mode('require', `&sslrootcert=${pki.ca}`).config.ssl as Record<string, unknown>;
    expect(req.rejectUnauthorized).toBe(true);
    expect(typeof req.checkServerIdentity).toBe('function');
    // No TLS over a Unix socket, as in libpq.
    expect(mode('require', '&host=/var/run/postgresql').config.ssl).toBe(false);
    // sslrootcert=system: the system store, verify-full by default, nothing weaker.
    const system = pgTarget({ url: 'postgres://h/db?sslrootcert=system', option: 'source.url', env: NO_ENV });
    expect(system.mode).toBe('verify-full');
    expect((system.config.ssl as Record<string, unknown>).ca).toBeUndefined();
    expect(() => mode('require', '&sslrootcert=system')).toThrow(/sslrootcert=system needs sslmode=verify-full/);
  });

  it('reads PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY; the URL wins over them', () => {
    const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: pki.ca, PGSSLCERT: pki.client.cert, PGSSLKEY: pki.client.key };
    const fromEnv = pgTarget({ url: 'postgres://h/db', option: 'source.url', env });
    expect(fromEnv.mode).toBe('verify-full');
    expect(fromEnv.config.ssl).toMatchObject({ ca: fs.readFileSync(pki.ca, 'utf8'), cert: fs.readFileSync(pki.client.cert, 'utf8'), rejectUnauthorized: true });
    const urlWins = pgTarget({ url: `postgres://h/db?sslmode=disable`, option: 'source.url', env });
    expect(urlWins.config.ssl).toBe(false);
    const noUrl = pgTarget({ url: undefined, password: 'pw', option: 'source.url', env: { PGSSLMODE: 'require' } });
    expect(noUrl.config).toEqual({ password: 'pw', ssl: { rejectUnauthorized: false } });
  });

  it('puts a separate password into the URL percent-encoded', () => {
    const t = pgTarget({ url: 'postgres://u@h/db', password: 'a/b?c@d', option: 'source.url', env: NO_ENV });
    expect(t.config.connectionString).toBe('postgres://u:a%2Fb%3Fc%40d@h/db');
  });

  it('names the parameter or variable of a file it cannot use: a configuration error', () => {
    const err = (url: string, env: NodeJS.ProcessEnv = NO_ENV) => {
      try {
        pgTarget({ url, option: 'source.url', env });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err('postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem')).toBe('source.url: sslrootcert in source.url=/nonexistent/ca.pem: cannot read it (no such file)');
    expect(err('postgres://h/db', { PGSSLROOTCERT: '/nonexistent/ca.pem', PGSSLMODE: 'verify-ca' })).toBe('source.url: PGSSLROOTCERT=/nonexistent/ca.pem: cannot read it (no such file)');
    expect(err('postgres://h/db?sslmode=on')).toMatch(/^source\.url: sslmode in source\.url must be one of disable, allow, prefer, require, verify-ca, verify-full \(got "on"\)$/);
    expect(err('postgres://h/db', { PGSSLMODE: 'strict' })).toMatch(/^source\.url: PGSSLMODE must be one of/);
    expect(err(`postgres://h/db?sslcert=${pki.client.cert}`)).toMatch(/sslcert in source\.url is set but sslkey is not/);
    expect(err(`postgres://h/db?sslcert=${pki.client.cert}&sslkey=${pki.client.encryptedKey}`)).toMatch(/cannot load the private key \(it is encrypted: give its passphrase as sslpassword/);
    const wrong = err(`postgres://h/db?sslcert=${pki.client.cert}&sslkey=${pki.client.encryptedKey}&sslpassword=not-the-passphrase`);
    expect(wrong).toMatch(/sslpassword does not decrypt it/);
    expect(wrong).not.toContain('not-the-passphrase');
    expect(err(`postgres://h/db?sslmode=verify-full&sslrootcert=${pki.client.key}`)).toMatch(/not a PEM file holding a certificate/);
  });

  it('names sessions logship:<offsetKey>:<role>, within PostgreSQL\'s 63 bytes', () => {
    expect(applicationName('logship:LogShipper-state', 'worker')).toBe('logship:LogShipper-state:worker');
    const long = `logship:${'k'.repeat(60)}`;
    expect(applicationName(long, 'worker')).toBe(long.slice(0, 63));
    expect(Buffer.byteLength(applicationName(`logship:${'é'.repeat(40)}`, 'main'))).toBeLessThanOrEqual(63);
    expect(applicationName(undefined, 'main')).toBe('logship:main');
  });
});

describe('source.statementTimeout and source.lockTimeout', () => {
  const base = { source: { url: 'postgres://h/db' }, logExporters: [{ id: 'f', type: 'file', directory: '/tmp/x' }] };

  it('parses ISO-8601 durations; lockTimeout defaults to 10 s, statementTimeout to none; names a bad value', () => {
    const c = parseConfig({ ...base, offsetKey: 'k1', source: { url: 'postgres://h/db', statementTimeout: 'PT15M', lockTimeout: 'PT2.5S' } });
    expect(c.source).toMatchObject({ statementTimeoutMs: 900_000, lockTimeoutMs: 2500, applicationName: 'logship:k1' });
    expect(parseConfig(base).source).toMatchObject({ statementTimeoutMs: 0, lockTimeoutMs: 10_000 });
    expect(() => parseConfig({ ...base, source: { url: 'postgres://h/db', statementTimeout: '15 minutes' } })).toThrow(/^source\.statementTimeout: must be an ISO-8601 duration/);
    expect(() => parseConfig({ ...base, source: { url: 'postgres://h/db', lockTimeout: 'P1M' } })).toThrow(/^source\.lockTimeout: must be a fixed-length duration of at most 24 days/);
    expect(() => parseConfig({ ...base, source: { url: 'postgres://h/db', statementTimeout: 'P30D' } })).toThrow(/^source\.statementTimeout:/);
  });

  it('applies them per session and turns a timeout into an error naming the option', async () => {
    const { url, client } = await freshDatabase('tls_timeouts', false);
    opened.push(client);
    const source = { ...parseConfig({ ...base, offsetKey: 'timeouts' }).source, url, statementTimeoutMs: 200, lockTimeoutMs: 300 };
    const session = await SourceSession.open(source, 'main');
    try {
      const c = session.current();
      const settings = await c.query(`SELECT current_setting('statement_timeout') s, current_setting('lock_timeout') l, current_setting('application_name') a`);
      expect(settings.rows[0]).toEqual({ s: '200ms', l: '300ms', a: 'logship:timeouts:main' });
      // 20 s against a 200 ms limit: PostgreSQL cancels it whatever the machine's load.
      const slow = await failure(session.run((db) => db.query('SELECT pg_sleep(20)')));
      expect(slow.message).toMatch(/^source: a query ran longer than source\.statementTimeout \(0\.2 s\) and was cancelled by PostgreSQL; raise source\.statementTimeout/);
      expect(slow.code).toBe('57014');
    } finally {
      await session.end();
    }
    // No statement timeout here, so only the lock timeout can end the wait.
    const locking = await SourceSession.open({ ...source, statementTimeoutMs: 0 }, 'main');
    try {
      await client.query('CREATE TABLE locked (x int)');
      await client.query('BEGIN; LOCK TABLE locked');
      const blocked = await failure(locking.run((db) => db.query('SELECT * FROM locked')));
      await client.query('ROLLBACK');
      expect(blocked.message).toMatch(/^source: waited longer than source\.lockTimeout \(0\.3 s\) for a lock/);
      expect(blocked.code).toBe('55P03');
    } finally {
      await locking.end();
    }
  });
});

describe('connections to a TLS-only server with a private CA', () => {
  const connectTo = (url: string) => connect(url, 'test', { startup: true }, { applicationName: 'logship:tls' });

  async function ok(url: string): Promise<{ ssl: boolean; client_dn: string | null; user: string }> {
    const c = await connectTo(url);
    try {
      return await sslOf(c);
    } finally {
      await c.end();
    }
  }

  it('require: encrypts without verifying (the CA is not trusted and need not be)', async () => {
    expect(await ok(withParams(tlsUrl, { sslmode: 'require' }))).toMatchObject({ ssl: true });
  });

  it('verify-ca and verify-full with sslrootcert, and require with sslrootcert (verified as verify-ca)', async () => {
    for (const sslmode of ['verify-ca', 'verify-full', 'require']) {
      expect(await ok(withParams(tlsUrl, { sslmode, sslrootcert: pki.ca }))).toMatchObject({ ssl: true });
    }
    // verify-full checks the name connected to: localhost is in the certificate too.
    expect(await ok(withParams(tlsUrl.replace('127.0.0.1', 'localhost'), { sslmode: 'verify-full', sslrootcert: pki.ca }))).toMatchObject({ ssl: true });
  });

  it('verify-full against a certificate for another host: one line naming source.url, exit 4 at startup', async () => {
    const err = await failure(connectTo(withParams(wrongHostServer.url, { sslmode: 'verify-full', sslrootcert: pki.ca })));
    expect(err.code).toBe('source-unavailable');
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/^source\.url: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/postgres: the server's certificate does not name the host connected to \(.*127\.0\.0\.1.*\): connect with a host name the certificate names, or use sslmode=verify-ca/);
    // The same certificate passes verify-ca: its CA is right.
    expect(await ok(withParams(wrongHostServer.url, { sslmode: 'verify-ca', sslrootcert: pki.ca }))).toMatchObject({ ssl: true });
  });

  it('verify-ca without sslrootcert (system CAs only): one line saying what to set', async () => {
    const err = await failure(connectTo(withParams(tlsUrl, { sslmode: 'verify-ca' })));
    expect(err.code).toBe('source-unavailable');
    expect(err.message).toMatch(/^source\.url: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/postgres: the server's certificate is not signed by a trusted CA \(self-signed certificate in certificate chain\): set sslrootcert=\/path\/to\/ca\.pem in the URL or PGSSLROOTCERT, or use sslmode=require to encrypt without verifying$/);
    const other = await failure(connectTo(withParams(tlsUrl, { sslmode: 'verify-full', sslrootcert: pki.otherCa })));
    expect(other.message).toContain(`not signed by the CA in sslrootcert in source.url=${pki.otherCa}`);
  });

  it('honours PGSSLMODE and PGSSLROOTCERT', async () => {
    const target = pgTarget({ url: tlsUrl, option: 'source.url', env: { PGSSLMODE: 'verify-full', PGSSLROOTCERT: pki.ca } });
    const { client } = await openClient(target);
    expect((await sslOf(client)).ssl).toBe(true);
    await client.end();
    const untrusted = pgTarget({ url: tlsUrl, option: 'source.url', env: { PGSSLMODE: 'verify-full' } });
    await expect(openClient(untrusted)).rejects.toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  });

  it('logs in with a client certificate: sslcert/sslkey (also encrypted, with sslpassword) and PGSSLCERT/PGSSLKEY', async () => {
    const certUrl = `postgres://${CERT_USER}@127.0.0.1:${tlsServer.port}/certdb`;
    const viaUrl = await ok(withParams(certUrl, { sslmode: 'verify-full', sslrootcert: pki.ca, sslcert: pki.client.cert, sslkey: pki.client.key }));
    expect(viaUrl).toEqual({ ssl: true, client_dn: `/CN=${CERT_USER}`, user: CERT_USER });
    const encrypted = await ok(withParams(certUrl, { sslmode: 'require', sslcert: pki.client.cert, sslkey: pki.client.encryptedKey, sslpassword: pki.keyPassphrase }));
    expect(encrypted.user).toBe(CERT_USER);
    const target = pgTarget({ url: certUrl, option: 'source.url', env: { PGSSLMODE: 'verify-ca', PGSSLROOTCERT: pki.ca, PGSSLCERT: pki.client.cert, PGSSLKEY: pki.client.key } });
    const { client } = await openClient(target);
    expect(await sslOf(client)).toEqual(viaUrl);
    await client.end();
    // Without a certificate, pg_hba's cert line refuses the login.
    const none = await failure(connectTo(withParams(certUrl, { sslmode: 'require' })));
    expect(none.message).toMatch(/^source\.url: .*certificate/);
  });

  it('prefer: TLS with a TLS server, plain text with a server without TLS; allow: TLS when plain is rejected', async () => {
    expect(await ok(withParams(tlsUrl, { sslmode: 'prefer' }))).toMatchObject({ ssl: true });
    expect(await ok(tlsUrl)).toMatchObject({ ssl: true });
    const plainUrl = inject('pgUrl');
    expect(await ok(withParams(plainUrl, { sslmode: 'prefer' }))).toMatchObject({ ssl: false });
    expect(await ok(plainUrl)).toMatchObject({ ssl: false });
    expect(await ok(withParams(tlsUrl, { sslmode: 'allow' }))).toMatchObject({ ssl: true });
    expect(await ok(withParams(plainUrl, { sslmode: 'allow' }))).toMatchObject({ ssl: false });
  });

  it('disable against the TLS-only server: the server\'s pg_hba rejection; require against a server without TLS: says so', async () => {
    const off = await failure(connectTo(withParams(tlsUrl, { sslmode: 'disable' })));
    expect(off.code).toBe('source-unavailable');
    expect(off.message).toMatch(/no pg_hba\.conf entry for host "127\.0\.0\.1", user "postgres", database "postgres", no encryption/);
    const refused = await failure(connectTo(withParams(inject('pgUrl'), { sslmode: 'require' })));
    expect(refused.message).toMatch(/^source\.url: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/postgres: the server refuses TLS \(sslmode=require\): enable ssl on the server, or use sslmode=prefer/);
  });

  it('cancels a COPY over TLS and keeps the session usable (the canceller connects like its session)', async () => {
    const admin = await direct(tlsUrl);
    await admin.query('CREATE DATABASE copydb');
    await admin.end();
    const url = withParams(tlsUrl.replace(/\/postgres$/, '/copydb'), { sslmode: 'verify-full', sslrootcert: pki.ca });
    const c = await connectTo(url);
    try {
      const sql = `SELECT i::text, now()::timestamp, jsonb_build_object('i', i) FROM generate_series(1, 200000) i`;
      let batches = 0;
      for await (const batch of readWithCopy(c, sql, 100)) {
        expect(batch.count).toBeGreaterThan(0);
        if (++batches === 2) break;
      }
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      expect((await sslOf(c)).ssl).toBe(true);
    } finally {
      await c.end();
    }
  });
});

describe('the distributed queue over TLS', () => {
  it('starts pg-boss and LISTENs with the source URL\'s TLS settings (prefer settled once for the pool)', async () => {
    const admin = await direct(tlsUrl);
    await admin.query('CREATE DATABASE queuedb');
    await admin.end();
    const url = tlsUrl.replace(/\/postgres$/, '/queuedb');
    for (const [label, u] of [['verify-full', withParams(url, { sslmode: 'verify-full', sslrootcert: pki.ca })], ['prefer', url]] as const) {
      const config = parseConfig({ source: { url: u }, offsetKey: `queue-${label}`, logExporters: [{ id: 'f', type: 'file', directory: '/tmp/unused' }] });
      const queue = await openQueue(config, log, 2);
      try {
        const ids = await queue.boss.send(queue.name, { shard: 1 });
        expect(ids).toBeTruthy();
        const sessions = await queue.boss.getDb().executeSql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'logship-queue'", []);
        expect(sessions.rows.length).toBeGreaterThan(0);
        expect(sessions.rows.every((r: { ssl: boolean }) => r.ssl)).toBe(true);
        const wakeup = await Wakeup.listen(queueTarget(config), 'logship_tls_test', log);
        const woken = wakeup.wait(10 * 60_000);
        await queue.boss.getDb().executeSql("SELECT pg_notify('logship_tls_test', '1')", []);
        await woken;
        await wakeup.close();
      } finally {
        await queue.boss.stop({ graceful: false, wait: true, close: true });
      }
    }
  });
});

describe('logship over TLS (CLI)', () => {
  async function seededTlsDatabase(name: string, rows: number): Promise<string> {
    const admin = await direct(tlsUrl);
    await admin.query(`CREATE DATABASE ${name} OWNER ${CERT_USER}`);
    await admin.end();
    const url = `postgres://${CERT_USER}@127.0.0.1:${tlsServer.port}/${name}`;
    const c = await direct(url, { rejectUnauthorized: false, cert: fs.readFileSync(pki.client.cert, 'utf8'), key: fs.readFileSync(pki.client.key, 'utf8') });
    opened.push(c);
    await c.query("SET TimeZone = 'UTC'");
    await createKestraSchema(c);
    await seedKestraLogs(c, { rows, start: isoAgo(3720), spanSeconds: 3600 });
    return url;
  }

  function config(dir: string, url: string, offsetKey: string) {
    return writeConfig(dir, {
      source: { url }, offsetKey, lookbackPeriod: 'P1D', workers: 2, rowsPerShard: 1000,
      logExporters: [{ id: 'files', type: 'file', directory: path.join(dir, 'out') }],
    });
  }

  it('exports over verify-full with a client certificate from PGSSL* variables, postgres state included, stderr clean', async () => {
    const url = await seededTlsDatabase('cli_export', 2500);
    const dir = tempDir('tls-run');
    const cfg = config(dir, url, 'tls-export');
    const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: pki.ca, PGSSLCERT: pki.client.cert, PGSSLKEY: pki.client.key };
    const r = await runCli(['run', '--config', cfg], { env });
    expect(r.stderr).not.toMatch(/SECURITY WARNING|Warning|"level":(40|50)/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('exported 2,500 rows');
    const check = await direct(url, { rejectUnauthorized: false, cert: fs.readFileSync(pki.client.cert, 'utf8'), key: fs.readFileSync(pki.client.key, 'utf8') });
    opened.push(check);
    expect(exportedDocs(path.join(dir, 'out'))).toEqual(await sourceDocs(check));
    // The state went to the source database over the same TLS sessions.
    const st = await runCli(['state', '--config', cfg, '--json'], { env });
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout).offset).not.toBeNull();
  });

  it('prints no library warning for sslmode=require or prefer (URL or PGSSLMODE)', async () => {
    const dir = tempDir('tls-warn');
    const cases: [string, Record<string, string>][] = [
      [withParams(tlsUrl, { sslmode: 'require' }), {}],
      [withParams(tlsUrl, { sslmode: 'prefer' }), {}],
      [withParams(inject('pgUrl'), { sslmode: 'prefer' }), {}],
      [tlsUrl, { PGSSLMODE: 'require' }],
      [withParams(tlsUrl, { sslmode: 'verify-ca', sslrootcert: pki.ca }), {}],
    ];
    for (const [i, [url, env]] of cases.entries()) {
      const r = await runCli(['state', '--config', config(dir, url, `warn-${i}`)], { env });
      expect(r.stderr).not.toMatch(/SECURITY WARNING|Warning/);
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('exit 4 with one line for a certificate that does not verify; exit 2 for a missing certificate file', async () => {
    const dir = tempDir('tls-fail');
    const untrusted = await runCli(['state', '--config', config(dir, withParams(tlsUrl, { sslmode: 'verify-full' }), 'f1')]);
    expect(untrusted.code).toBe(4);
    expect(untrusted.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^logship: source\.url: cannot connect to postgres:\/\/127\.0\.0\.1:\d+\/postgres: the server's certificate is not signed by a trusted CA \(self-signed certificate in certificate chain\): set sslrootcert=/)]);
    const missing = await runCli(['state', '--config', config(dir, tlsUrl, 'f2')], { env: { PGSSLMODE: 'verify-full', PGSSLROOTCERT: path.join(dir, 'nope.pem') } });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`logship: source.url: PGSSLROOTCERT=${path.join(dir, 'nope.pem')}: cannot read it (no such file)`);
  });
});
