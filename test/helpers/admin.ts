/** Admin hooks of a gateway that serves nothing: for tests of the admin listener itself. */
import type { AdminHooks } from '../../src/admin/server.js';
import { ConfigStore, defaultConfig } from '../../src/config/index.js';

export function idleAdminHooks(): AdminHooks {
  return {
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    readiness: () => ({ ready: true, reasons: [] }),
    status: () => ({}),
    reload: async () => ({ ok: true }),
    config: () => defaultConfig({}),
    configFile: () => null,
    openStore: (file: string) => ConfigStore.open(file),
  };
}
