// Azure Monitor Logs Ingestion throughput: N seeded rows in an embedded PostgreSQL, a local HTTPS
// endpoint that plays Entra ID and the ingestion API and answers at once (gunzips and counts the
// rows), and the CLI as its own process with workers: 1. Prints events/s and peak RSS from the report.
// Never run by the tests. Usage: node dist/bench/platform_azure_monitor.js [--rows 200000] [--chunk 1000] [--concurrency 4]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import YAML from 'yaml';
import { startEmbeddedPostgres } from '../src/demo/embedded_pg.js';
import { seedBenchDay } from './seed_day.js';
import { packageRoot } from '../src/core/paths.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, chunk: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '4' } } });
const CLI = path.join(packageRoot(), 'bin/logship.cjs');
const TENANT = 'bench-tenant';
const RULE = 'dcr-00000000000000000000000000000000';

function startEndpoint(dir: string): Promise<{ url: string; rows: () => number; close: () => void }> {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  let rows = 0;
  const marker = Buffer.from('"TimeGenerated":');
  let base = '';
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '/';
      if (url.includes('openid-configuration')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token_endpoint: `${base}/${TENANT}/oauth2/v2.0/token`, authorization_endpoint: `${base}/${TENANT}/oauth2/v2.0/authorize`, issuer: `${base}/${TENANT}/v2.0`, end_session_endpoint: `${base}/${TENANT}/oauth2/v2.0/logout`, jwks_uri: `${base}/${TENANT}/discovery/v2.0/keys` }));
      } else if (url.includes('/oauth2/v2.0/token')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: 'bench-token' }));
      } else {
        const body = zlib.gunzipSync(Buffer.concat(chunks));
        for (let i = body.indexOf(marker); i !== -1; i = body.indexOf(marker, i + 1)) rows++;
        res.writeHead(204);
        res.end();
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    base = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    resolve({ url: base, rows: () => rows, close: () => server.close() });
  }));
}

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'logship-bench-azmon-'));
  const db = await startEmbeddedPostgres();
  const endpoint = await startEndpoint(work);
  try {
    await seedBenchDay(db.url, rows);
    const bundle = path.join(work, 'ca.pem');
    const existing = process.env.NODE_EXTRA_CA_CERTS && fs.existsSync(process.env.NODE_EXTRA_CA_CERTS) ? `${fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS, 'utf8')}\n` : '';
    fs.writeFileSync(bundle, existing + fs.readFileSync(path.join(work, 'cert.pem'), 'utf8'));
    const cfg = path.join(work, 'logship.yaml');
    fs.writeFileSync(cfg, YAML.stringify({
      source: { url: db.url }, lookbackPeriod: 'P1D', offsetKey: 'bench-azmon', workers: 1, state: { type: 'file', path: path.join(work, 'state.json') },
      logExporters: [{ id: 'azmon', type: 'azure-monitor', endpoint: endpoint.url, authorityHost: endpoint.url, tenantId: TENANT, clientId: 'bench-client', clientSecret: 'bench-secret', ruleId: RULE, streamName: 'Custom-KestraLogs', chunk: Number(values.chunk), concurrency: Number(values.concurrency), deadLetter: path.join(work, 'dead') }],
    }));
    const report = path.join(work, 'report.json');
    const t0 = process.hrtime.bigint();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'run', '--config', cfg, '--report', report], { env: { ...process.env, NODE_EXTRA_CA_CERTS: bundle }, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('close', resolve);
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (code !== 0) throw new Error(`logship exited ${code}`);
    const rep = JSON.parse(fs.readFileSync(report, 'utf8')) as { rows: number; peakRssBytes: number; cpuSeconds: number };
    if (endpoint.rows() !== rows) throw new Error(`the endpoint received ${endpoint.rows()} rows, expected ${rows}`);
    console.log(`azure-monitor, workers=1, chunk=${values.chunk}, concurrency=${values.concurrency}: ${rows.toLocaleString('en-US')} rows in ${seconds.toFixed(2)} s = ${Math.round(rows / seconds).toLocaleString('en-US')} events/s, peak RSS ${(rep.peakRssBytes / 2 ** 20).toFixed(0)} MiB, CPU ${rep.cpuSeconds?.toFixed?.(1) ?? '?'} s`);
  } finally {
    endpoint.close();
    await db.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
