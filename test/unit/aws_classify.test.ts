import { describe, expect, it } from 'vitest';
import { decideAwsError } from '../../src/sinks/aws/classify.js';
import { decideCloudWatchError } from '../../src/sinks/cloudwatch/retry.js';
import { decideKinesisError } from '../../src/sinks/kinesis/retry.js';

/** An error shaped as the AWS SDK v3 throws it (a ServiceException with $metadata). */
function awsError(name: string, status?: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });
}

describe('the one AWS classifier', () => {
  it.each([
    ['ThrottlingException', 400],
    ['ProvisionedThroughputExceededException', 400],
    ['KMSThrottlingException', 400],
    ['ServiceUnavailableException', 503],
    ['InternalFailure', 500],
    ['SomeNewThrottledError', 400],
  ])('retries %s (HTTP %s)', (name, status) => {
    expect(decideAwsError(awsError(name, status), 'x').kind).toBe('retry');
  });

  it('retries what the SDK marks as throttling whatever its name', () => {
    expect(decideAwsError(awsError('Odd', 400, { $retryable: { throttling: true } }), 'x').kind).toBe('retry');
  });

  it('fails a credential error for good, naming what to check', () => {
    const d = decideAwsError(awsError('UnrecognizedClientException', 400), 'cloudwatch[a]');
    expect(d).toEqual({ kind: 'fatal', reason: 'cloudwatch[a]: UnrecognizedClientException: UnrecognizedClientException message (check accessKeyId/secretKeyId, sessionToken or roleArn)' });
  });

  it('fails other 4xx answers, retries 408, 429, 5xx and answerless errors', () => {
    expect(decideAwsError(awsError('ValidationException', 400), 'x').kind).toBe('fatal');
    expect(decideAwsError(awsError('Whatever', 408), 'x').kind).toBe('retry');
    expect(decideAwsError(awsError('Whatever', 429), 'x').kind).toBe('retry');
    expect(decideAwsError(awsError('Whatever', 502), 'x').kind).toBe('retry');
    expect(decideAwsError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x').kind).toBe('retry');
  });

  it('lets a service word its own names, after the retryable ones', () => {
    expect(decideCloudWatchError(awsError('DataAlreadyAcceptedException', 400), 'cw').kind).toBe('ok');
    expect(decideCloudWatchError(awsError('ResourceNotFoundException', 400), 'cw')).toMatchObject({ kind: 'fatal', reason: expect.stringContaining('deleted during the run') });
    expect(decideKinesisError(awsError('ResourceNotFoundException', 400), 'k', 's1')).toMatchObject({ kind: 'fatal', reason: expect.stringContaining('stream s1 does not exist') });
    expect(decideKinesisError(awsError('KMSDisabledException', 400), 'k', 's1')).toMatchObject({ kind: 'fatal', reason: expect.stringContaining("the stream's KMS key") });
    // KMS throttling is a KMS name, but busy, not broken.
    expect(decideKinesisError(awsError('KMSThrottlingException', 400), 'k', 's1').kind).toBe('retry');
  });
});
