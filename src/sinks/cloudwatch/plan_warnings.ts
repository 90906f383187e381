import { tsToMicros } from '../../core/keyset.js';
import { awsErrorText } from '../aws/client_options.js';
import { CLOUDWATCH_LIMITS, type CloudWatchExporterConfig } from './config.js';
import { CloudWatchService } from './service.js';

const DAY_MS = 86_400_000;

/**
 * A backfill reaching further back than CloudWatch accepts would dead-letter those events
 * (PutLogEvents rejects events over 14 days old, and older than the group's retention), so
 * `plan` says so before a run. The window start is the oldest a row can be.
 */
export async function cloudWatchPlanWarnings(config: CloudWatchExporterConfig, window: { start: string }, now = Date.now()): Promise<string[]> {
  const who = `cloudwatch exporter '${config.id}'`;
  const startMs = tsToMicros(window.start) / 1000;
  const ageDays = (now - startMs) / DAY_MS;
  const warnings: string[] = [];
  if (now - startMs > CLOUDWATCH_LIMITS.maxAgeMs) {
    warnings.push(`${who}: the window starts ${ageDays.toFixed(1)} days ago; CloudWatch Logs rejects events more than 14 days old, so older rows would be dead-lettered`);
  }
  let service: CloudWatchService | undefined;
  try {
    service = await CloudWatchService.create(config);
    const retention = await service.retentionDays();
    if (retention !== undefined && now - startMs > retention * DAY_MS) {
      warnings.push(`${who}: the window starts ${ageDays.toFixed(1)} days ago; log group ${config.logGroupName} keeps ${retention} days, so older rows would be rejected as expired and dead-lettered`);
    }
  } catch (err) {
    warnings.push(`${who}: could not read the retention of log group ${config.logGroupName}: ${awsErrorText(err)}`);
  } finally {
    await service?.close();
  }
  return warnings;
}
