/** The gateway in this process, for tests that inspect its internals (fds, listeners, counters). */
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { policyConfigCheck } from '../../src/policy/index.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/log/logger.js';
import { stringify } from 'yaml';

export interface InProcessGateway {
  gateway: Gateway;
  port: number;
  config: PortcullisConfig;
  stop(): Promise<void>;
}

export async function startInProcess(config: Record<string, unknown>): Promise<InProcessGateway> {
  const text = stringify({
    ...config,
    proxy: { listen: ['127.0.0.1:0'], ...((config.proxy as object) ?? {}) },
    log: { level: 'silent', access: false },
  });
  const parsed = parseConfig(text, { source: 'test', checks: [policyConfigCheck], env: {} });
  const { logger } = createLogger({ level: 'silent' });
  const gateway = new Gateway({ config: parsed, source: 'test', logger });
  const [addr] = await gateway.start();
  return { gateway, port: addr!.port, config: parsed, stop: () => gateway.stop() };
}
