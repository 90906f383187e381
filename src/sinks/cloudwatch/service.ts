import { CloudWatchLogsClient, CreateLogGroupCommand, CreateLogStreamCommand, DescribeLogGroupsCommand, DescribeLogStreamsCommand, PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { checkWithRetries } from '../aws/check.js';
import { awsClientOptions, type AwsError } from '../aws/client_options.js';
import type { DeliveryService } from '../delivery/types.js';
import { PermanentExportError } from '../../core/errors.js';
import type { CloudWatchExporterConfig } from './config.js';
import type { PutLogEventsRequest } from './request_builder.js';
import type { RejectedLogEventsInfo } from './retry.js';

const errorName = (err: unknown) => (err as AwsError)?.name;

/** PutLogEvents through the official client; the group and stream are created when missing. */
export class CloudWatchService implements DeliveryService<PutLogEventsRequest, RejectedLogEventsInfo | undefined> {
  readonly label: string;

  private constructor(
    private readonly config: CloudWatchExporterConfig,
    private readonly client: CloudWatchLogsClient,
  ) {
    this.label = `cloudwatch exporter '${config.id}' (${config.logGroupName}/${config.logStreamName}, ${config.endpoint ?? config.region})`;
  }

  static async create(config: CloudWatchExporterConfig): Promise<CloudWatchService> {
    return new CloudWatchService(config, new CloudWatchLogsClient(await awsClientOptions(config, config.requestTimeoutMs, `logship-${config.id}`)));
  }

  async check(): Promise<void> {
    const { logGroupName, logStreamName, createLogGroup } = this.config;
    const retried = <T>(what: string, call: () => Promise<T>) => checkWithRetries(this.config, this.label, what, call, () => null);
    const groups = await retried(`cannot describe log group ${logGroupName}`, () => this.client.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: logGroupName, limit: 50 })));
    if (!groups.logGroups?.some((g) => g.logGroupName === logGroupName)) {
      if (!createLogGroup) throw new PermanentExportError(`${this.label}: log group ${logGroupName} does not exist (createLogGroup is false)`);
      await retried(`cannot create log group ${logGroupName}`, () => this.ignoreExisting(this.client.send(new CreateLogGroupCommand({ logGroupName }))));
    }
    const streams = await retried(`cannot describe log stream ${logStreamName}`, () => this.client.send(new DescribeLogStreamsCommand({ logGroupName, logStreamNamePrefix: logStreamName, limit: 50 })));
    if (!streams.logStreams?.some((s) => s.logStreamName === logStreamName)) {
      if (!createLogGroup) throw new PermanentExportError(`${this.label}: log stream ${logStreamName} does not exist in log group ${logGroupName} (createLogGroup is false)`);
      await retried(`cannot create log stream ${logStreamName}`, () => this.ignoreExisting(this.client.send(new CreateLogStreamCommand({ logGroupName, logStreamName }))));
    }
  }

  /** The group's retention in days, for `plan`'s backfill warning; undefined when unlimited or unknown. */
  async retentionDays(): Promise<number | undefined> {
    const groups = await this.client.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: this.config.logGroupName, limit: 50 }));
    return groups.logGroups?.find((g) => g.logGroupName === this.config.logGroupName)?.retentionInDays;
  }

  async send(request: PutLogEventsRequest): Promise<RejectedLogEventsInfo | undefined> {
    const out = await this.client.send(new PutLogEventsCommand({ logGroupName: this.config.logGroupName, logStreamName: this.config.logStreamName, logEvents: request.events }));
    return out.rejectedLogEventsInfo;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Another worker (or an earlier run) may create the same group or stream at the same moment. */
  private async ignoreExisting(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (errorName(err) !== 'ResourceAlreadyExistsException') throw err;
    }
  }
}
