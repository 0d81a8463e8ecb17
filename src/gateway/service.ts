import type { PortcullisConfig } from '../config/types.js';

/** Whether a part of the gateway should get traffic, and if not, why (sentences that name the part). */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/**
 * Every long-running part of the gateway (the proxy listener, the admin listener; the forwarder's
 * ingest and syslog listeners, spool and sender next) is a Service that the Gateway runs.
 */
export interface Service {
  /** 'proxy', 'admin', 'forwarder', 'syslog', ... */
  readonly name: string;
  /** Bind/open. On failure throw a ServiceStartError, leaving nothing of this service running. */
  start(): Promise<void>;
  /** Apply a validated configuration; restart-only settings are already kept as running. */
  reload(next: PortcullisConfig): void | Promise<void>;
  /** Stop accepting, let in-flight work finish for up to deadlineMs, then close. */
  drain(deadlineMs: number): Promise<void>;
  readiness(): Readiness;
}
