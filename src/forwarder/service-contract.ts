/**
 * The Service contract from the team brief (src/gateway/service.ts and src/gateway/errors.ts on the
 * services branch). Declared here, structurally identical, so the forwarder builds on its own
 * branch; at merge these two declarations give way to the gateway's.
 */
import type { PortcullisConfig } from '../config/types.js';
import { PortcullisError } from '../util/errors.js';

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  reload(next: PortcullisConfig): void | Promise<void>;
  drain(deadlineMs: number): Promise<void>;
  readiness(): Readiness;
}

export class ServiceStartError extends PortcullisError {
  override readonly cause: string;
  constructor(
    readonly configKey: string,
    cause: string,
    readonly error?: unknown,
  ) {
    super('PCL_ERR_SERVICE_START', `${configKey}: ${cause}`);
    this.name = 'ServiceStartError';
    this.cause = cause;
  }
}
