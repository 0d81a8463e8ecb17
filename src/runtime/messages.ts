import type { PortcullisConfig } from '../config/types.js';
import type { BoundAddress } from '../proxy/index.js';

/** Supervisor → worker. */
export type ToWorker =
  | { type: 'portcullis:reload'; config: PortcullisConfig; source: string }
  | { type: 'portcullis:drain' }
  | { type: 'portcullis:clients?'; id: number; windowMs: number };

/** Worker → supervisor. */
export type ToPrimary =
  | { type: 'portcullis:listening'; addresses: BoundAddress[] }
  | { type: 'portcullis:clients'; id: number; ips: string[] };

export const WORKER_CONFIG_ENV = 'PORTCULLIS_WORKER_CONFIG';
export const WORKER_SOURCE_ENV = 'PORTCULLIS_WORKER_SOURCE';

export function isMessage<T extends { type: string }>(m: unknown, type: T['type']): m is T {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type;
}
