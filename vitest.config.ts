import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global_setup.ts'],
    setupFiles: ['test/helpers/no_warnings.ts'],
    reporters: ['default', './test/helpers/summary_reporter.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests start real servers and subprocesses; two files at a time matches the two cores.
    maxWorkers: 2,
  },
});
