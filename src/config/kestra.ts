import { ConfigError } from '../core/errors.js';
import { OptionReader } from '../core/options.js';

export const LOG_SHIPPER_TYPES = ['io.kestra.plugin.ee.core.log.LogShipper', 'io.kestra.plugin.core.log.LogShipper'];
export const AUDIT_LOG_SHIPPER_TYPES = ['io.kestra.plugin.ee.core.log.AuditLogShipper'];
const SHIPPER_TYPES = [...LOG_SHIPPER_TYPES, ...AUDIT_LOG_SHIPPER_TYPES];

/** The task properties each shipper maps onto logship's options (the rest are Kestra plumbing or errors). */
const LOG_PROPERTIES = ['logLevelFilter', 'lookbackPeriod', 'namespace', 'offsetKey', 'delete', 'logExporters'];
const AUDIT_PROPERTIES = ['resources', 'lookbackPeriod', 'namespace', 'offsetKey', 'delete', 'logExporters'];

/** Task properties every Kestra task may carry; they steer Kestra's executor, not the export. */
const KESTRA_TASK_PLUMBING = [
  'id', 'type', 'description', 'disabled', 'timeout', 'retry', 'allowFailure', 'allowWarning',
  'logLevel', 'logToFile', 'runIf', 'workerGroup', 'taskCache', 'version',
];

export function isKestraFlow(doc: unknown): doc is Record<string, unknown> {
  return !!doc && typeof doc === 'object' && !Array.isArray(doc) && Array.isArray((doc as Record<string, unknown>).tasks);
}

interface FoundTask { path: string; task: Record<string, unknown> }

function findLogShippers(tasks: unknown, path: string, out: FoundTask[]): void {
  if (!Array.isArray(tasks)) return;
  tasks.forEach((task, i) => {
    if (!task || typeof task !== 'object') return;
    const t = task as Record<string, unknown>;
    const at = `${path}[${i}]`;
    if (typeof t.type === 'string' && SHIPPER_TYPES.includes(t.type)) out.push({ path: at, task: t });
    // Flowable tasks (Sequential, Parallel, If…) nest their children under these keys.
    for (const nested of ['tasks', 'then', 'else', 'errors', 'finally']) findLogShippers(t[nested], `${at}.${nested}`, out);
  });
}

/**
 * Maps a Kestra flow with a LogShipper task onto a native logship config. Triggers and the other
 * flow-level keys belong to Kestra and are ignored; the task's own properties are checked as
 * strictly as native ones. The source comes from LOGSHIP_SOURCE_URL / PG* since a flow has none.
 */
export function kestraFlowToConfig(flow: Record<string, unknown>, taskId: string | undefined): { config: Record<string, unknown>; pathPrefix: string } {
  const found: FoundTask[] = [];
  findLogShippers(flow.tasks, 'tasks', found);
  const chosen = taskId ? found.filter((f) => f.task.id === taskId) : found;
  if (chosen.length === 0) {
    const what = taskId ? `no LogShipper or AuditLogShipper task with id ${JSON.stringify(taskId)}` : `no task of type ${LOG_SHIPPER_TYPES[0]} or ${AUDIT_LOG_SHIPPER_TYPES[0]}`;
    throw new ConfigError('tasks', `the Kestra flow has ${what}`);
  }
  if (chosen.length > 1) {
    throw new ConfigError('tasks', `the Kestra flow has ${chosen.length} LogShipper/AuditLogShipper tasks; choose one with --task (${chosen.map((f) => String(f.task.id)).join(', ')})`);
  }
  const { path, task } = chosen[0]!;
  const r = OptionReader.of(path, task);
  r.ignore(...KESTRA_TASK_PLUMBING);
  const audit = AUDIT_LOG_SHIPPER_TYPES.includes(task.type as string);
  const config: Record<string, unknown> = audit ? { kind: 'audit' } : {};
  for (const key of audit ? AUDIT_PROPERTIES : LOG_PROPERTIES) {
    const v = r.raw(key);
    if (v !== undefined) config[key] = v;
  }
  r.done();
  return { config, pathPrefix: path };
}
