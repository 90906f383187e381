import { PlatformEndpoint, type Answer, type ReceivedRequest } from '../platform_server.js';
import { verifySigV4, type AwsTestCredentials } from './aws_auth.js';

export interface StoredLogEvent { timestamp: number; message: string; ingestionTime: number }
interface LogGroup { retentionInDays?: number; creationTime: number; streams: Map<string, StoredLogEvent[]> }

const DAY = 86_400_000;

/** An AWS JSON 1.1 error as CloudWatch Logs sends it (the SDK reads `__type`). */
export function cloudWatchError(type: string, message: string, status = 400): Answer {
  return { status, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'test' }, body: JSON.stringify({ __type: type, message }) };
}

/**
 * A protocol-faithful CloudWatch Logs endpoint for the official client: the AWS JSON 1.1
 * protocol (`X-Amz-Target: Logs_20140328.<Operation>`), SigV4 verified against known keys, and
 * PutLogEvents' real rules: 1-10,000 events, ≤ 1,048,576 bytes counted as UTF-8 message + 26
 * per event, chronological order, a span under 24 h, and events more than 14 days old (or older
 * than the group's retention) or more than 2 h ahead reported in `rejectedLogEventsInfo` and
 * dropped, by the clock `now` (injectable, so age tests do not depend on the wall clock).
 */
export class CloudWatchServer extends PlatformEndpoint {
  readonly groups = new Map<string, LogGroup>();
  now: () => number = () => Date.now();
  putCalls = 0;

  constructor(private readonly credentials: AwsTestCredentials[] = [{ accessKeyId: 'AKIDLOGSHIPTEST', secretAccessKey: 'test-secret-key' }]) {
    super();
  }

  /** Every stored event of one stream, in storage order. */
  events(group: string, stream: string): StoredLogEvent[] {
    return this.groups.get(group)?.streams.get(stream) ?? [];
  }

  /** Role ARNs assumed through this server's STS AssumeRole (the Query protocol, XML answers). */
  readonly assumedRoles: string[] = [];

  private async assumeRole(r: ReceivedRequest): Promise<Answer> {
    const denied = await verifySigV4(r, this.credentials, 'sts');
    const xml = (status: number, body: string): Answer => ({ status, headers: { 'content-type': 'text/xml' }, body });
    if (denied) return xml(403, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${denied.type === 'UnrecognizedClientException' ? 'InvalidClientTokenId' : 'SignatureDoesNotMatch'}</Code><Message>${denied.message}</Message></Error><RequestId>test</RequestId></ErrorResponse>`);
    const form = new URLSearchParams(r.body.toString('utf8'));
    const role = form.get('RoleArn') ?? '';
    this.assumedRoles.push(role);
    const temp = { accessKeyId: `ASIATEMP${this.assumedRoles.length}`, secretAccessKey: `temp-secret-${this.assumedRoles.length}` };
    this.credentials.push(temp);
    const expiration = new Date(this.now() + 3600_000).toISOString();
    return xml(200, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>${temp.accessKeyId}</AccessKeyId><SecretAccessKey>${temp.secretAccessKey}</SecretAccessKey><SessionToken>session-token-${this.assumedRoles.length}</SessionToken><Expiration>${expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROATEST:${form.get('RoleSessionName')}</AssumedRoleId><Arn>${role.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${form.get('RoleSessionName')}</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>test</RequestId></ResponseMetadata></AssumeRoleResponse>`);
  }

  protected async handle(r: ReceivedRequest): Promise<Answer> {
    if (String(r.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded') && r.body.toString('utf8').startsWith('Action=AssumeRole')) return this.assumeRole(r);
    const target = String(r.headers['x-amz-target'] ?? '');
    if (r.method !== 'POST' || !target.startsWith('Logs_20140328.')) return cloudWatchError('UnknownOperationException', `unknown operation ${target}`);
    const denied = await verifySigV4(r, this.credentials, 'logs');
    if (denied) return cloudWatchError(denied.type, denied.message, denied.type === 'InvalidSignatureException' ? 403 : 400);
    const input = JSON.parse(r.body.toString('utf8') || '{}') as Record<string, unknown>;
    const op = target.slice('Logs_20140328.'.length);
    const ok = (body: unknown): Answer => ({ status: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify(body) });
    const groupName = input.logGroupName as string;
    switch (op) {
      case 'CreateLogGroup':
        if (this.groups.has(groupName)) return cloudWatchError('ResourceAlreadyExistsException', 'The specified log group already exists');
        this.groups.set(groupName, { creationTime: this.now(), streams: new Map() });
        return ok({});
      case 'PutRetentionPolicy': {
        const g = this.groups.get(groupName);
        if (!g) return cloudWatchError('ResourceNotFoundException', 'The specified log group does not exist.');
        g.retentionInDays = input.retentionInDays as number;
        return ok({});
      }
      case 'DescribeLogGroups': {
        const prefix = (input.logGroupNamePrefix as string | undefined) ?? '';
        const logGroups = [...this.groups].filter(([n]) => n.startsWith(prefix)).sort(([a], [b]) => a.localeCompare(b))
          .map(([n, g]) => ({ logGroupName: n, creationTime: g.creationTime, retentionInDays: g.retentionInDays, arn: `arn:aws:logs:us-east-1:123456789012:log-group:${n}:*`, storedBytes: 0 }));
        return ok({ logGroups });
      }
      case 'CreateLogStream': {
        const g = this.groups.get(groupName);
        if (!g) return cloudWatchError('ResourceNotFoundException', 'The specified log group does not exist.');
        if (g.streams.has(input.logStreamName as string)) return cloudWatchError('ResourceAlreadyExistsException', 'The specified log stream already exists');
        g.streams.set(input.logStreamName as string, []);
        return ok({});
      }
      case 'DescribeLogStreams': {
        const g = this.groups.get(groupName);
        if (!g) return cloudWatchError('ResourceNotFoundException', 'The specified log group does not exist.');
        const prefix = (input.logStreamNamePrefix as string | undefined) ?? '';
        return ok({ logStreams: [...g.streams.keys()].filter((n) => n.startsWith(prefix)).sort().map((n) => ({ logStreamName: n, creationTime: g.creationTime })) });
      }
      case 'PutLogEvents':
        return this.putLogEvents(input, ok);
      default:
        return cloudWatchError('UnknownOperationException', `unknown operation ${op}`);
    }
  }

  private putLogEvents(input: Record<string, unknown>, ok: (b: unknown) => Answer): Answer {
    this.putCalls++;
    const g = this.groups.get(input.logGroupName as string);
    if (!g) return cloudWatchError('ResourceNotFoundException', 'The specified log group does not exist.');
    const stream = g.streams.get(input.logStreamName as string);
    if (!stream) return cloudWatchError('ResourceNotFoundException', 'The specified log stream does not exist.');
    const events = (input.logEvents as { timestamp: number; message: string }[] | undefined) ?? [];
    if (events.length < 1 || events.length > 10_000) return cloudWatchError('InvalidParameterException', `1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and 10000 (got ${events.length})`);
    let bytes = 0;
    for (const e of events) bytes += Buffer.byteLength(e.message) + 26;
    if (bytes > 1_048_576) return cloudWatchError('InvalidParameterException', `Upload too large: ${bytes} bytes exceeds limit of 1048576`);
    for (let i = 1; i < events.length; i++) {
      if (events[i]!.timestamp < events[i - 1]!.timestamp) return cloudWatchError('InvalidParameterException', 'Log events in a single PutLogEvents request must be in chronological order.');
    }
    if (events[events.length - 1]!.timestamp - events[0]!.timestamp >= DAY) return cloudWatchError('InvalidParameterException', 'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.');
    const now = this.now();
    const tooOld = now - 14 * DAY;
    const expired = g.retentionInDays ? now - g.retentionInDays * DAY : -Infinity;
    const tooNew = now + 2 * 3600_000;
    const info: Record<string, number> = {};
    let oldEnd = 0;
    while (oldEnd < events.length && events[oldEnd]!.timestamp < tooOld) oldEnd++;
    let expiredEnd = 0;
    while (expiredEnd < events.length && events[expiredEnd]!.timestamp < expired) expiredEnd++;
    let newStart = events.length;
    while (newStart > 0 && events[newStart - 1]!.timestamp > tooNew) newStart--;
    if (oldEnd > 0) info.tooOldLogEventEndIndex = oldEnd;
    if (expiredEnd > 0) info.expiredLogEventEndIndex = expiredEnd;
    if (newStart < events.length) info.tooNewLogEventStartIndex = newStart;
    for (let i = Math.max(oldEnd, expiredEnd); i < newStart; i++) stream.push({ timestamp: events[i]!.timestamp, message: events[i]!.message, ingestionTime: now });
    return ok(Object.keys(info).length > 0 ? { nextSequenceToken: String(this.putCalls), rejectedLogEventsInfo: info } : { nextSequenceToken: String(this.putCalls) });
  }
}
