import { afterEach } from 'vitest';

/**
 * Every test fails on a Node process warning emitted in its own process: a warning is how Node
 * reports a double-closed descriptor ("closed but not opened in unmanaged mode"), a leaked
 * listener or a deprecated call, and each of those is a defect, not noise. (Spawned CLIs are
 * checked the same way by test/helpers/cli.ts, through --trace-warnings and their stderr.)
 */
const seen: Error[] = [];
// The AWS SDK warns once per process that Node 20 will lose its support; logship's CLI turns that
// off (src/cli/quiet_aws.ts), and tests that read back through the SDK do the same.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.on('warning', (warning) => seen.push(warning));

afterEach(() => {
  if (seen.length === 0) return;
  const warnings = seen.splice(0);
  throw new Error(`Node process warning during this test:\n${warnings.map((w) => w.stack ?? `${w.name}: ${w.message}`).join('\n')}`);
});
