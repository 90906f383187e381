import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/** The deliberately failing canary alone, through the suite's own setup (see .ci/run). */
export default defineConfig({ ...base, test: { ...base.test, include: ['test/canary/*.canary.ts'] } });
