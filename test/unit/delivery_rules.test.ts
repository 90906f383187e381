import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkWithRetries as awsCheckWithRetries } from '../../src/sinks/aws/check.js';
import { awsErrorText, isCredentialError } from '../../src/sinks/aws/client_options.js';
import { backoffDelay, sleep } from '../../src/core/retry.js';
import { checkWithRetries } from '../../src/sinks/delivery/check.js';
import { decideStatus, decideTransportError, parseRetryAfter, type Decision } from '../../src/sinks/delivery/decision.js';
import { httpFailure, isTransientStatus, PermanentExportError } from '../../src/core/errors.js';
import { deliveryOptions } from '../helpers/stub_driver.js';

/** The shared retry rules of the delivery core: statuses, transport errors, Retry-After, backoff, pre-run checks. */

afterEach(() => {
  vi.useRealTimers();
});

describe('decideStatus', () => {
  it.each([
    [200, { kind: 'ok' }],
    [204, { kind: 'ok' }],
    [413, { kind: 'split', reason: 'x: HTTP 413 (request too large)' }],
    [408, { kind: 'retry', reason: 'x: HTTP 408', retryAfterMs: 5 }],
    [429, { kind: 'retry', reason: 'x: HTTP 429', retryAfterMs: 5 }],
    [500, { kind: 'retry', reason: 'x: HTTP 500', retryAfterMs: 5 }],
    [503, { kind: 'retry', reason: 'x: HTTP 503', retryAfterMs: 5 }],
    [401, { kind: 'fatal', reason: 'x: HTTP 401 (authentication failed: check the API key or token)' }],
    [403, { kind: 'fatal', reason: "x: HTTP 403 (not allowed: check the key's permissions)" }],
    [400, { kind: 'fatal', reason: 'x: HTTP 400' }],
    [404, { kind: 'fatal', reason: 'x: HTTP 404' }],
  ])('HTTP %i', (status, decision) => {
    expect(decideStatus(status, 'x', 5)).toEqual(decision);
  });
});

describe('decideTransportError', () => {
  const err = (props: Record<string, unknown>, message = 'boom') => Object.assign(new Error(message), props);
  it('an SDK error carrying an HTTP status is decided by the status', () => {
    expect(decideTransportError(err({ $metadata: { httpStatusCode: 503 } }), 'x')).toEqual({ kind: 'retry', reason: 'x: HTTP 503' });
    expect(decideTransportError(err({ statusCode: 403 }), 'x').kind).toBe('fatal');
    expect(decideTransportError(err({ status: 413 }), 'x').kind).toBe('split');
  });
  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET'])('%s is retried and named', (code) => {
    expect(decideTransportError(err({ code }), 'x')).toEqual({ kind: 'retry', reason: `x: ${code}` });
    expect(decideTransportError(err({ cause: { code } }), 'x')).toEqual({ kind: 'retry', reason: `x: ${code}` });
  });
  it('timeouts and aborts are retried as "timed out"', () => {
    expect(decideTransportError(Object.assign(new Error('t'), { name: 'TimeoutError' }), 'x')).toEqual({ kind: 'retry', reason: 'x: timed out' });
    expect(decideTransportError(Object.assign(new Error('t'), { name: 'AbortError' }), 'x')).toEqual({ kind: 'retry', reason: 'x: timed out' });
  });
  it("fetch's TypeError('fetch failed') is retried with its cause", () => {
    expect(decideTransportError(new TypeError('fetch failed', { cause: new Error('other side closed') }), 'x')).toEqual({ kind: 'retry', reason: 'x: other side closed' });
  });
  it('anything else is retried with the first line of its message', () => {
    expect(decideTransportError(new Error('socket hang up\nat stack'), 'x')).toEqual({ kind: 'retry', reason: 'x: socket hang up' });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  it.each([
    ['120', 120_000],
    [' 1 ', 1000],
    ['0', 0],
    ['0.25', 250],
    ['Sun, 01 Mar 2026 12:00:30 GMT', 30_000],
    ['Sun, 01 Mar 2026 11:00:00 GMT', 0],
  ])('%j → %i ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });
  it.each([[undefined], [null], [''], ['soon']])('%j → undefined', (value) => {
    expect(parseRetryAfter(value as string | undefined, now)).toBeUndefined();
  });
});

describe('backoffDelay (full jitter, Retry-After as a floor)', () => {
  const b = (random: number, over = {}) => ({ minMs: 100, maxMs: 1000, random: () => random, ...over });
  it('the ceiling doubles per attempt from minMs up to maxMs; the delay is a uniform draw under it', () => {
    expect([1, 2, 3, 4, 5, 9].map((a) => backoffDelay(b(1), a))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(b(0.5), 3)).toBe(200);
    expect(backoffDelay(b(0), 3)).toBe(0);
  });
  it('never waits less than Retry-After asked, up to maxRetryAfterMs (default five minutes)', () => {
    expect(backoffDelay(b(0), 1, 30_000)).toBe(30_000);
    expect(backoffDelay(b(1), 5, 10)).toBe(1000);
    expect(backoffDelay(b(0), 1, 3_600_000)).toBe(300_000);
    expect(backoffDelay(b(0, { maxRetryAfterMs: 5000 }), 1, 60_000)).toBe(5000);
  });
});

describe('sleep', () => {
  it('waits the time asked, and an abort cuts it short (fake timers)', async () => {
    vi.useFakeTimers();
    const abort = new AbortController();
    let slept = false;
    void sleep(10_000, abort.signal).then(() => (slept = true));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(slept).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(slept).toBe(true);
    let cut = false;
    void sleep(60_000, abort.signal).then(() => (cut = true));
    abort.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(cut).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
  it('resolves at once for no time or an already aborted signal', async () => {
    const aborted = AbortSignal.abort();
    await sleep(60_000, aborted);
    await sleep(0, new AbortController().signal);
  });
});

describe('failures', () => {
  it('408, 429 and 5xx are transient; other statuses are not', () => {
    expect([408, 429, 500, 502, 503, 504].every(isTransientStatus)).toBe(true);
    expect([200, 400, 401, 403, 404, 409, 413].some(isTransientStatus)).toBe(false);
  });
  it('httpFailure: permanent for a non-transient 4xx, retryable otherwise', () => {
    expect(httpFailure(403, 'm')).toBeInstanceOf(PermanentExportError);
    expect(httpFailure(404, 'm')).toBeInstanceOf(PermanentExportError);
    for (const s of [429, 503, undefined]) expect(httpFailure(s, 'm')).not.toBeInstanceOf(PermanentExportError);
  });
});

describe('checkWithRetries (the pre-run check of HTTP platforms)', () => {
  const options = deliveryOptions('dead', { maxAttempts: 4, minBackoffMs: 1, maxBackoffMs: 2 });
  it('retries a passing failure, then passes', async () => {
    const answers: Decision[] = [{ kind: 'retry', reason: 'HTTP 503' }, { kind: 'retry', reason: 'HTTP 503' }, { kind: 'ok' }];
    const probe = vi.fn(async () => answers.shift()!);
    await checkWithRetries(options, 'p', probe);
    expect(probe).toHaveBeenCalledTimes(3);
  });
  it('a refusal fails at once, permanently, naming the exporter', async () => {
    const probe = vi.fn(async (): Promise<Decision> => ({ kind: 'fatal', reason: 'HTTP 401 (check the token)' }));
    await expect(checkWithRetries(options, "x exporter 'a'", probe)).rejects.toEqual(new PermanentExportError("x exporter 'a': HTTP 401 (check the token)"));
    expect(probe).toHaveBeenCalledTimes(1);
  });
  it('an unreachable host is retried maxAttempts times, then named (not permanent)', async () => {
    const probe = vi.fn(async (): Promise<Decision> => {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    });
    const failure = await checkWithRetries(options, "x exporter 'a'", probe).catch((e: unknown) => e);
    expect(failure).not.toBeInstanceOf(PermanentExportError);
    expect((failure as Error).message).toBe("x exporter 'a': ECONNREFUSED; gave up after 4 attempts");
    expect(probe).toHaveBeenCalledTimes(4);
  });
  it('honours Retry-After between attempts (fake timers)', async () => {
    vi.useFakeTimers();
    const answers: Decision[] = [{ kind: 'retry', reason: 'HTTP 429', retryAfterMs: 20_000 }, { kind: 'ok' }];
    const probe = vi.fn(async () => answers.shift()!);
    const checked = checkWithRetries(options, 'p', probe);
    await vi.advanceTimersByTimeAsync(19_999);
    expect(probe).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    await checked;
    expect(probe).toHaveBeenCalledTimes(2);
  });
});

describe('AWS: error classification and the pre-run check', () => {
  const aws = (name: string, status?: number, extra: Record<string, unknown> = {}) => Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status }, ...extra });
  it('credential errors are recognised by name', () => {
    for (const n of ['UnrecognizedClientException', 'InvalidSignatureException', 'ExpiredTokenException', 'AccessDeniedException', 'CredentialsProviderError', 'KMSAccessDeniedException']) expect(isCredentialError(aws(n))).toBe(true);
    for (const n of ['ThrottlingException', 'ResourceNotFoundException', 'ValidationException']) expect(isCredentialError(aws(n))).toBe(false);
  });
  it('awsErrorText: "Name: first line", or the name and status when the message says nothing', () => {
    expect(awsErrorText(Object.assign(new Error('The security token is invalid.\nmore'), { name: 'UnrecognizedClientException' }))).toBe('UnrecognizedClientException: The security token is invalid.');
    expect(awsErrorText(Object.assign(new Error('UnknownError'), { name: 'InternalFailure', $metadata: { httpStatusCode: 500 } }))).toBe('InternalFailure (HTTP 500)');
  });

  const options = deliveryOptions('dead', { maxAttempts: 3, minBackoffMs: 1, maxBackoffMs: 2 });
  const run = (errors: unknown[], permanent: (e: unknown) => string | null = () => null) => {
    const call = vi.fn(async () => {
      const e = errors.shift();
      if (e) throw e;
      return 'ok';
    });
    return { call, result: awsCheckWithRetries(options, "kinesis exporter 'k'", 'cannot use stream s', call, permanent) };
  };
  it('retries throttling and 5xx, then passes', async () => {
    const { call, result } = run([aws('ThrottlingException', 400, { $retryable: { throttling: true } }), aws('InternalFailure', 500)]);
    await expect(result).resolves.toBe('ok');
    expect(call).toHaveBeenCalledTimes(3);
  });
  it('a credential error fails at once with the hint', async () => {
    const { call, result } = run([aws('InvalidSignatureException', 403)]);
    await expect(result).rejects.toEqual(new PermanentExportError("kinesis exporter 'k': cannot use stream s: InvalidSignatureException: InvalidSignatureException happened (check accessKeyId/secretKeyId, sessionToken or roleArn)"));
    expect(call).toHaveBeenCalledTimes(1);
  });
  it("the caller's permanent rule, and any other 4xx, fail at once", async () => {
    await expect(run([aws('ResourceNotFoundException', 400)], () => 'stream s does not exist').result).rejects.toEqual(new PermanentExportError("kinesis exporter 'k': cannot use stream s: stream s does not exist"));
    await expect(run([aws('ValidationException', 400)]).result).rejects.toBeInstanceOf(PermanentExportError);
  });
  it('an unreachable endpoint is retried maxAttempts times, then named', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { name: 'Error', code: 'ECONNREFUSED' });
    const { call, result } = run([refused, refused, refused, refused]);
    const failure = await result.catch((e: unknown) => e);
    expect(failure).not.toBeInstanceOf(PermanentExportError);
    expect((failure as Error).message).toBe("kinesis exporter 'k': cannot use stream s: Error: connect ECONNREFUSED 127.0.0.1:9; gave up after 3 attempts");
    expect(call).toHaveBeenCalledTimes(3);
  });
});
