import tls from 'node:tls';

const trusted = new Set<string>();

/**
 * Makes this test process trust a test certificate, as NODE_EXTRA_CA_CERTS does for a spawned CLI
 * (which Node reads only at start-up): every TLS context this process creates from now on gets the
 * certificate as an extra CA. For in-process tests against HTTPS fakes (Azure's SDK sends bearer
 * tokens over TLS only); the process is a test worker, so nothing outlives the test file.
 */
export function trustInThisProcess(certPem: string): void {
  if (trusted.size === 0) {
    const original = tls.createSecureContext;
    tls.createSecureContext = (options?: tls.SecureContextOptions) => {
      const context = original(options);
      for (const pem of trusted) (context.context as { addCACert(pem: string): void }).addCACert(pem);
      return context;
    };
  }
  trusted.add(certPem);
}
