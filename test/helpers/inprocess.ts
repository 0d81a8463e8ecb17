/** The gateway in this process, for tests that inspect its internals (fds, listeners, counters). */
import { EventEmitter, once } from 'node:events';
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { ProxyService } from '../../src/gateway/proxy-service.js';
import type { ProxyServer } from '../../src/proxy/index.js';
import { createLogger } from '../../src/log/logger.js';
import { noopObserver, type AccessRecord, type ProxyObserver } from '../../src/proxy/access.js';
import { stringify } from 'yaml';
import { afterAll, beforeAll } from 'vitest';
import { startTcpEcho, type TestServer } from './servers.js';

export interface InProcessGateway {
  /** The proxy service's server, for its counters. */
  gateway: { proxy: ProxyServer };
  port: number;
  config: PortcullisConfig;
  /** Established tunnels so far, by what relayed their bytes (from the access records). */
  readonly relayed: Readonly<Record<'native' | 'js', number>>;
  /** Every access record so far, in order (refusals included). */
  readonly records: readonly AccessRecord[];
  /** Emits 'change' whenever a client connection or a tunnel closes. */
  readonly events: EventEmitter;
  stop(): Promise<void>;
}

export async function startInProcess(config: Record<string, unknown>): Promise<InProcessGateway> {
  const text = stringify({
    ...config,
    proxy: { listen: ['127.0.0.1:0'], ...((config.proxy as object) ?? {}) },
    log: { level: 'silent', access: false },
  });
  const parsed = parseConfig(text, { source: 'test', env: {} });
  const { logger } = createLogger({ level: 'silent' });
  const relayed = { native: 0, js: 0 };
  const records: AccessRecord[] = [];
  const events = new EventEmitter();
  const observer: ProxyObserver = {
    ...noopObserver,
    clientDisconnected: () => events.emit('change'),
    tunnelClosed: () => events.emit('change'),
    access(rec: AccessRecord) {
      records.push(rec);
      if (rec.kind === 'tunnel' && rec.relay) relayed[rec.relay]++;
    },
  };
  const service = new ProxyService({ config: parsed, source: 'test', logger, observer, announce: false });
  await service.start();
  const [addr] = service.bound;
  if (!addr) throw new Error('in-process gateway bound no address');
  return { gateway: { proxy: service.server }, port: addr.port, config: parsed, relayed, records, events, stop: () => service.drain(parsed.proxy.drainMs) };
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

/**
 * Resolves once the gateway has no open client connection or tunnel left, re-checking each time
 * one closes; rejects after `timeoutMs` with what is still open. Descriptors of the sockets on the
 * far side (the echo server's) may close a moment later: wait for those with waitForFdCount.
 */
export async function waitUntilIdle(gw: InProcessGateway, timeoutMs = 5_000): Promise<void> {
  const { proxy } = gw.gateway;
  const idle = (): boolean => proxy.activeConnections === 0 && proxy.openTunnels === 0;
  const signal = AbortSignal.timeout(timeoutMs);
  while (!idle()) {
    try {
      await once(gw.events, 'change', { signal });
    } catch {
      throw new Error(`gateway not idle after ${timeoutMs} ms: ${proxy.activeConnections} connections, ${proxy.openTunnels} tunnels open`);
    }
  }
}
