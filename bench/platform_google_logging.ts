// `node dist/bench/platform_google_logging.js [--rows N]`: logship → a local Cloud Logging REST
// endpoint (`/v2/entries:write`) that answers 200 at once, through the official client, workers: 1
// (bench/platform_kit.ts). Never part of the tests.
import crypto from 'node:crypto';
import { benchPlatform } from './platform_kit.js';

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const serviceAccount = JSON.stringify({ type: 'service_account', client_email: 'bench@bench-project.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });

await benchPlatform({
  name: 'google-logging',
  answer: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' }),
  exporter: (endpoint) => ({ type: 'google-logging', projectId: 'bench-project', serviceAccount, endpoint }),
  variants: ['rest'],
});
