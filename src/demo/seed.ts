import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { packageRoot } from '../core/paths.js';

export const KESTRA_DDL = fs.readFileSync(path.join(packageRoot(), 'fixtures', 'kestra_logs.sql'), 'utf8');
/** A model of Kestra Enterprise's audit table (the real one is not public). */
export const KESTRA_AUDIT_DDL = fs.readFileSync(path.join(packageRoot(), 'fixtures', 'kestra_audit_logs.sql'), 'utf8');

export interface SeedOptions {
  rows: number;
  /** First row's timestamp (ISO). */
  start: string;
  /** Rows are spread evenly over this many seconds. */
  spanSeconds: number;
  /** Consecutive rows sharing one timestamp, to exercise keyset ties. */
  tieGroup?: number;
  /** Offset added to the row counter, so repeated seeds make distinct keys. */
  seq?: number;
  tenantId?: string | null;
}

/**
 * Synthetic Kestra log rows generated inside PostgreSQL (fast even for millions of rows):
 * realistic level mix, nested namespaces, random non-time-ordered keys, timestamp ties and
 * non-ASCII messages.
 */
export async function seedKestraLogs(client: pg.Client, o: SeedOptions): Promise<void> {
  const tie = o.tieGroup ?? 3;
  const seq = o.seq ?? 0;
  const groups = Math.ceil(o.rows / tie);
  const stepUs = Math.max(1, Math.floor((o.spanSeconds * 1e6) / groups));
  const tenant = o.tenantId === undefined ? "'main'" : o.tenantId === null ? 'NULL' : escapeLiteral(o.tenantId);
  await client.query(`
    INSERT INTO logs (key, value)
    SELECT substr(md5(g::text || 'k'), 1, 8) || substr(md5(g::text), 9, 14),
      jsonb_strip_nulls(jsonb_build_object(
        'tenantId', ${tenant},
        'namespace', (ARRAY['company.team', 'company.team.backend', 'company.team.data.etl', 'company.teamx', 'system', 'company_team'])[1 + g % 6],
        'flowId', 'flow_' || (g % 37),
        'taskId', 'task_' || (g % 11),
        'executionId', substr(md5((g / 40)::text), 1, 22),
        'taskRunId', substr(md5((g / 8)::text), 1, 22),
        'attemptNumber', (g % 3) + 1,
        'triggerId', CASE WHEN g % 7 = 0 THEN 'schedule' END,
        'timestamp', to_char(${escapeLiteral(o.start)}::timestamptz + ((g - ${seq} - 1) / ${tie}) * ${stepUs} * interval '1 microsecond', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'level', (ARRAY['TRACE', 'DEBUG', 'DEBUG', 'INFO', 'INFO', 'INFO', 'INFO', 'WARN', 'ERROR'])[1 + (g * 7919) % 9],
        'thread', 'WorkerThread-' || (g % 16),
        'message', CASE g % 5
          WHEN 0 THEN 'Task started: processed ' || g || ' records in ' || (g % 977) || ' ms'
          WHEN 1 THEN 'Überprüfung abgeschlossen — état: ok ✓ 日本語のログ ' || g
          WHEN 2 THEN E'Multi-line output:\\n  line "one"\\n\\tline two ' || g
          WHEN 3 THEN 'HTTP 200 GET /api/v1/executions/' || md5(g::text) || ' took ' || (g % 311) || 'ms'
          ELSE 'emoji 🚀 and backslash \\ and quote " in message ' || g
        END,
        'executionKind', CASE WHEN g % 4 = 0 THEN 'NORMAL' END
      ))
    FROM generate_series(${seq + 1}::int8, ${seq + o.rows}::int8) g`);
}

export async function createKestraSchema(client: pg.Client): Promise<void> {
  await client.query(KESTRA_DDL);
}

/**
 * Seeds `rows` rows evenly over [start, start + spanSeconds) using `parallel` connections, one
 * contiguous time slice each: the INSERT is CPU-bound in its backend, so more backends finish
 * sooner on more cores.
 */
export async function seedKestraLogsParallel(url: string, o: { rows: number; start: string; spanSeconds: number; parallel?: number }): Promise<void> {
  const { default: pg } = await import('pg');
  const parallel = Math.max(1, Math.min(o.parallel ?? 2, o.rows));
  const startMs = Date.parse(o.start);
  const per = Math.ceil(o.rows / parallel);
  await Promise.all(Array.from({ length: parallel }, async (_, i) => {
    const from = i * per;
    const n = Math.min(per, o.rows - from);
    if (n <= 0) return;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await seedKestraLogs(client, {
        rows: n,
        start: new Date(startMs + (from / o.rows) * o.spanSeconds * 1000).toISOString(),
        spanSeconds: (n / o.rows) * o.spanSeconds,
        seq: from,
      });
    } finally {
      await client.end();
    }
  }));
}

export async function createKestraAuditSchema(client: pg.Client): Promise<void> {
  await client.query(KESTRA_AUDIT_DDL);
}

/**
 * Synthetic audit entries (fixtures/kestra_audit_logs.sql): users acting on flows, executions,
 * namespaces, KV entries (some in the older KV_STORE spelling) and secrets.
 */
export async function seedKestraAudit(client: pg.Client, o: SeedOptions): Promise<void> {
  const seq = o.seq ?? 0;
  const stepUs = Math.max(1, Math.floor((o.spanSeconds * 1e6) / Math.max(1, o.rows)));
  const tenant = o.tenantId === undefined ? "'main'" : o.tenantId === null ? 'NULL' : escapeLiteral(o.tenantId);
  await client.query(`
    INSERT INTO audit_logs (key, value)
    SELECT 'a' || substr(md5(g::text || 'audit'), 1, 21),
      jsonb_strip_nulls(jsonb_build_object(
        'id', substr(md5(g::text || 'id'), 1, 22),
        'type', (ARRAY['CREATE', 'UPDATE', 'DELETE', 'LOGIN', 'EXECUTE', 'READ'])[1 + g % 6],
        'detail', jsonb_strip_nulls(jsonb_build_object(
          'type', (ARRAY['io.kestra.core.models.flows.Flow', 'io.kestra.core.models.executions.Execution', 'io.kestra.ee.models.Namespace', 'io.kestra.core.storages.kv.KVEntry', 'io.kestra.ee.models.Secret'])[1 + g % 5],
          'resource', (ARRAY['FLOW', 'EXECUTION', 'NAMESPACE', CASE WHEN g % 2 = 0 THEN 'KVSTORE' ELSE 'KV_STORE' END, 'SECRET'])[1 + g % 5],
          'id', 'res_' || (g % 97),
          'namespace', (ARRAY['company.team', 'company.team.backend', 'company.teamx', 'system'])[1 + g % 4],
          'flowId', CASE WHEN g % 5 IN (0, 1) THEN 'flow_' || (g % 37) END,
          'executionId', CASE WHEN g % 5 = 1 THEN substr(md5((g / 3)::text), 1, 22) END)),
        'userId', 'user' || (g % 13) || '@example.com',
        'tenantId', ${tenant},
        'date', to_char(${escapeLiteral(o.start)}::timestamptz + (g - ${seq} - 1) * ${stepUs} * interval '1 microsecond', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'ipAddress', '10.0.' || (g % 255) || '.' || (g % 7),
        'impersonatedBy', CASE WHEN g % 29 = 0 THEN 'admin@example.com' END
      ))
    FROM generate_series(${seq + 1}::int8, ${seq + o.rows}::int8) g`);
}
