import { ConfigError } from '../core/errors.js';
import type { OptionReader } from '../core/options.js';

/** The characters @azure/identity accepts in a tenant ID (a GUID or a domain name). */
const TENANT_ID = /^[0-9a-zA-Z.-]+$/;

/**
 * Checks a tenant ID before the run: @azure/identity refuses any other at its first token request
 * with a message that names no option (Kestra's Azure Blob example ships `tenant_id`).
 */
export function checkTenantId(r: OptionReader, tenantId: string | undefined): void {
  if (tenantId !== undefined && !TENANT_ID.test(tenantId)) {
    throw new ConfigError(r.at('tenantId'), `must be a Microsoft Entra tenant ID, a GUID or a domain such as contoso.onmicrosoft.com (got ${JSON.stringify(tenantId)})`);
  }
}
