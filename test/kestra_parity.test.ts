import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import YAML from 'yaml';
import { ConfigError } from '../src/core/errors.js';
import { loadConfigText } from '../src/config/load.js';
import { redact } from '../src/core/secrets.js';
import { createKestraAuditSchema, seedKestraAudit } from '../src/demo/seed.js';
import { toEvent } from '../src/sinks/delivery/event.js';
import { RowBatchBuilder } from '../src/source/row_batch.js';
import { freshDatabase, isoAgo } from './helpers/db.js';
import { exportedDocs, runCli, tempDir, writeConfig } from './helpers/cli.js';

const FLOWS = fileURLToPath(new URL('../fixtures/kestra-flows/docs-examples/', import.meta.url));
const flow = (name: string) => fs.readFileSync(path.join(FLOWS, name), 'utf8');
const awsSecrets = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_KEY_ID: 'secret-key-example' };

function errorOf(text: string, options: Parameters<typeof loadConfigText>[1]): string {
  try {
    loadConfigText(text, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('flow variables: {{ vars.NAME }}', () => {
  const s3 = flow('04-aws-s3.yaml');

  it('resolves a variable from --var, as the docs S3 example needs', () => {
    const config = loadConfigText(s3, { secrets: { env: awsSecrets, secretsDir: undefined }, variables: { region: 'eu-west-3' } });
    expect(config.logExporters[0]).toMatchObject({ type: 's3', region: 'eu-west-3', bucket: 'logbucket' });
  });

  it('resolves from LOGSHIP_VAR_NAME when neither the flow nor --var has it', () => {
    const config = loadConfigText(s3, { secrets: { env: { ...awsSecrets, LOGSHIP_VAR_region: 'ap-south-1' }, secretsDir: undefined } });
    expect(config.logExporters[0]).toMatchObject({ region: 'ap-south-1' });
  });

  it('takes the flow variables first, then --var, then the environment', () => {
    const withVars = `variables:\n  region: us-west-2\n${s3}`;
    const config = loadConfigText(withVars, { secrets: { env: { ...awsSecrets, LOGSHIP_VAR_region: 'env' }, secretsDir: undefined }, variables: { region: 'cli' } });
    expect(config.logExporters[0]).toMatchObject({ region: 'us-west-2' });
  });

  it('names the option and the variable when a variable is undefined', () => {
    expect(errorOf(s3, { secrets: { env: awsSecrets, secretsDir: undefined } })).toBe(
      "tasks[0].logExporters[0].region: variable 'region' is not defined: add it to the flow's variables, pass --var region=VALUE or set LOGSHIP_VAR_region",
    );
  });

  it('refuses any other Kestra expression with one line naming the option', () => {
    const text = s3.replace('{{ vars.region }}', '{{ now() }}');
    expect(errorOf(text, { secrets: { env: awsSecrets, secretsDir: undefined } })).toBe(
      "tasks[0].logExporters[0].region: the Kestra expression {{ now() }} is not supported outside Kestra (logship supports {{ secret('NAME') }} and {{ vars.NAME }})",
    );
  });

  it('resolves a secret reached through a variable, and keeps it redacted', () => {
    const text = `variables:\n  key: "{{ secret('VAR_HELD_SECRET') }}"\n${s3.replace("\"{{ secret('AWS_SECRET_KEY_ID') }}\"", '"{{ vars.key }}"')}`;
    const config = loadConfigText(text, { secrets: { env: { ...awsSecrets, VAR_HELD_SECRET: 'vault-value-4711' }, secretsDir: undefined }, variables: { region: 'us-east-1' } });
    expect(config.logExporters[0]).toMatchObject({ secretKeyId: 'vault-value-4711' });
    expect(redact('auth failed for vault-value-4711')).toBe('auth failed for ***');
  });

  it('refuses a --var that is not NAME=VALUE', async () => {
    const r = await runCli(['plan', '--config', path.join(FLOWS, '04-aws-s3.yaml'), '--var', 'region']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('logship: --var: must be NAME=VALUE (got "region")\n');
  });
});

describe("Kestra's Splunk example, invalid YAML as published", () => {
  it('is one line with line and column, and a hint about tasks nested under triggers', async () => {
    const file = path.join(FLOWS, '11-splunk-invalid-yaml-as-published.yaml');
    const r = await runCli(['plan', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`logship: ${file}: not valid YAML (line 8, column 1): All mapping items must start at the same column; hint: \`tasks:\` is indented under \`triggers:\`; move it to the top level of the flow\n`);
  });
});

describe('the AuditLogShipper', () => {
  let db: { url: string; client: pg.Client };
  beforeAll(async () => {
    db = await freshDatabase('audit', false);
    await createKestraAuditSchema(db.client);
    await seedKestraAudit(db.client, { rows: 3000, start: isoAgo(3600 * 3), spanSeconds: 3600 * 2 });
  });
  afterAll(() => db.client.end());

  /** The docs example's AuditLogShipper task, with only its file exporter kept (the platforms have their own tests). */
  function auditFlow(dir: string, resources: string[], extra: Record<string, unknown> = {}): string {
    const doc = YAML.parse(flow('14-audit-log-shipper-all-platforms.yaml')) as { tasks: Record<string, unknown>[] };
    const task = doc.tasks[0]!;
    task.resources = resources;
    task.logExporters = [{ id: 'file', type: 'io.kestra.plugin.ee.core.log.FileLogExporter', directory: path.join(dir, 'out') }];
    Object.assign(task, extra);
    return writeConfig(dir, doc, 'audit-flow.yaml');
  }

  const expected = async (where: string) => (await db.client.query<{ v: string }>(`SELECT value::text AS v FROM audit_logs WHERE ${where}`)).rows.map((r) => r.v).sort();

  it('exports exactly the entries of the listed resources, once', async () => {
    const dir = tempDir('audit-flow');
    const r = await runCli(['run', '--config', auditFlow(dir, ['FLOW', 'EXECUTION'], { offsetKey: 'audit-flow-execution' })], { env: { LOGSHIP_SOURCE_URL: db.url } });
    expect(r.code).toBe(0);
    const want = await expected(`resource IN ('FLOW', 'EXECUTION')`);
    expect(want.length).toBeGreaterThan(0);
    expect(exportedDocs(path.join(dir, 'out'))).toEqual(want);
  });

  it('accepts both spellings of a resource and matches rows written with either', async () => {
    const dir = tempDir('audit-kv');
    const r = await runCli(['run', '--config', auditFlow(dir, ['KV_STORE'], { offsetKey: 'audit-kv' })], { env: { LOGSHIP_SOURCE_URL: db.url } });
    expect(r.code).toBe(0);
    const got = exportedDocs(path.join(dir, 'out'));
    expect(got).toEqual(await expected(`resource IN ('KVSTORE', 'KV_STORE')`));
    expect(got.some((d) => d.includes('"KV_STORE"')) && got.some((d) => d.includes('"KVSTORE"'))).toBe(true);
  });

  it('filters on detail.namespace and its children when namespace is given', async () => {
    const dir = tempDir('audit-ns');
    const r = await runCli(['run', '--config', auditFlow(dir, ['FLOW'], { namespace: 'company.team', offsetKey: 'audit-ns' })], { env: { LOGSHIP_SOURCE_URL: db.url } });
    expect(r.code).toBe(0);
    expect(exportedDocs(path.join(dir, 'out'))).toEqual(await expected(`resource = 'FLOW' AND (namespace = 'company.team' OR namespace LIKE 'company.team.%')`));
  });

  it('rejects an unknown resource with the list of known names', async () => {
    const dir = tempDir('audit-bad');
    const r = await runCli(['plan', '--config', auditFlow(dir, ['FLOW', 'WORKFLOWS'])], { env: { LOGSHIP_SOURCE_URL: db.url } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^logship: tasks\[0\]\.resources\[1\]: unknown Kestra resource "WORKFLOWS" \(known: FLOW, EXECUTION, TRIGGER, NAMESPACE, KVSTORE, .*\)\n$/);
  });

  it('refuses logLevelFilter on audit logs and resources on logs', () => {
    const audit = errorOf(YAML.stringify({ kind: 'audit', logLevelFilter: 'INFO', logExporters: [{ id: 'a', type: 'file' }] }), { secrets: { env: {}, secretsDir: undefined } });
    expect(audit).toBe('logLevelFilter: does not apply to audit logs (kind: audit); filter with resources');
    const logs = errorOf(YAML.stringify({ resources: ['FLOW'], logExporters: [{ id: 'a', type: 'file' }] }), { secrets: { env: {}, secretsDir: undefined } });
    expect(logs).toBe("resources: applies only to audit logs (kind: audit, Kestra's AuditLogShipper)");
  });

  it('gives platforms a message a person would write', () => {
    const b = new RowBatchBuilder(10);
    b.addStrings('k1', 1_700_000_000_000_000, JSON.stringify({ type: 'UPDATE', userId: 'user@x', detail: { resource: 'FLOW', namespace: 'company.team', flowId: 'my-flow' } }));
    const event = toEvent(b.take(), 0, { messageField: 'message', levelField: 'level', keyAttribute: 'logship_key' });
    expect(event.message).toBe('user@x UPDATE FLOW company.team/my-flow');
    expect(event.attributes).toMatchObject({ userId: 'user@x', type: 'UPDATE', logship_key: 'k1' });
  });
});
