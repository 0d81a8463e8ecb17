/** The gateway in this process, for tests that inspect its internals (fds, listeners, counters). */
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { policyConfigCheck } from '../../src/policy/index.js';
import { ProxyService } from '../../src/gateway/proxy-service.js';
import type { ProxyServer } from '../../src/proxy/index.js';
import { createLogger } from '../../src/log/logger.js';
import { stringify } from 'yaml';
import { afterAll, beforeAll } from 'vitest';
import { startTcpEcho, type TestServer } from './servers.js';

export interface InProcessGateway {
  /** The proxy service's server, for its counters. */
  gateway: { proxy: ProxyServer };
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
  const service = new ProxyService({ config: parsed, source: 'test', logger, announce: false });
  await service.start();
  const [addr] = service.bound;
  return { gateway: { proxy: service.server }, port: addr!.port, config: parsed, stop: () => service.drain(parsed.proxy.drainMs) };
}

/** An in-process gateway allowing only `echo.example.com` → a local TCP echo server. */
export async function startEchoInProcess(): Promise<{ gw: InProcessGateway; echo: TestServer; close(): Promise<void> }> {
  const echo = await startTcpEcho();
  const gw = await startInProcess({
    allow: { presets: [], rules: [{ name: 'echo', hosts: ['echo.example.com'], ports: [echo.port], allowPrivate: true }] },
    dns: { overrides: { 'echo.example.com': '127.0.0.1' } },
  });
  return {
    gw,
    echo,
    close: async () => {
      await gw.stop();
      await echo.close();
    },
  };
}

/** The same, started before the file's tests and closed after them; read its fields inside tests. */
export function echoInProcessForSuite(): { gw: InProcessGateway; echo: TestServer } {
  const suite = {} as { gw: InProcessGateway; echo: TestServer; close?: () => Promise<void> };
  beforeAll(async () => {
    Object.assign(suite, await startEchoInProcess());
  });
  afterAll(async () => {
    await suite.close?.();
  });
  return suite;
}

/** Wait (at most 5 s) until the gateway has no open connection or tunnel left, then a little more. */
export async function waitUntilIdle(gw: InProcessGateway): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((gw.gateway.proxy.activeConnections > 0 || gw.gateway.proxy.openTunnels > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 100));
}
