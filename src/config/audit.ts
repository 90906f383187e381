import { ConfigError } from '../core/errors.js';
import type { ColumnMapping } from '../source/options.js';

/**
 * Kestra's audit `Resource` names. Older releases spell some differently; both spellings are
 * accepted in config, and a filter matches rows written with either.
 */
const RESOURCES: Record<string, string[]> = {
  FLOW: [], EXECUTION: [], TRIGGER: [], NAMESPACE: [], KVSTORE: ['KV_STORE'], SECRET: [], USER: [],
  GROUP: [], ROLE: [], BINDING: [], SERVICE_ACCOUNT: ['SERVICEACCOUNT'], TENANT: [], APP: [], APPS: [],
  DASHBOARD: [], TESTSUITE: ['TEST_SUITE'], AUDITLOG: ['AUDIT_LOG'], BLUEPRINT: [], SETTING: [],
  WORKER_GROUP: ['WORKERGROUP'], INVITATION: [], IMPERSONATE: [], ME: [], TEMPLATE: [], TASK_RUN: ['TASKRUN'],
  LOG: [], METRIC: [], ASSET: [], CUSTOM_LINK: [], APITOKEN: ['API_TOKEN'], ANNOUNCEMENT: [], UNKNOWN: [],
};

const BY_SPELLING = new Map<string, string>();
for (const [name, older] of Object.entries(RESOURCES)) for (const s of [name, ...older]) BY_SPELLING.set(s, name);

/** Validates `resources` and expands each to every spelling a stored row may carry. */
export function parseResources(path: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(path, 'must list at least one Kestra resource, such as [FLOW, EXECUTION]');
  const spellings = new Set<string>();
  value.forEach((v, i) => {
    const name = typeof v === 'string' ? BY_SPELLING.get(v.toUpperCase()) : undefined;
    if (!name) throw new ConfigError(`${path}[${i}]`, `unknown Kestra resource ${JSON.stringify(v)} (known: ${Object.keys(RESOURCES).join(', ')})`);
    for (const s of [name, ...RESOURCES[name]!]) spellings.add(s);
  });
  return [...spellings];
}

/** The model audit table (fixtures/kestra_audit_logs.sql) needs no mapping: these are its columns. */
export const AUDIT_COLUMNS: ColumnMapping = {
  timestamp: 'timestamp',
  key: 'key',
  level: null,
  namespace: 'namespace',
  tenant: 'tenant_id',
  body: 'value',
  deleted: undefined,
  resource: 'resource',
};
