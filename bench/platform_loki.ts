// `node dist/bench/platform_loki.js [--rows N] [--variants protobuf,json]`: logship → a local
// Loki push endpoint that answers 204 at once, workers: 1 (bench/platform_kit.ts). Never part of the tests.
import { benchPlatform } from './platform_kit.js';

await benchPlatform({
  name: 'loki',
  answer: () => ({ status: 204, headers: {}, body: '' }),
  exporter: (url, protocol) => ({ type: 'loki', url, protocol }),
  variants: ['protobuf', 'json'],
});
