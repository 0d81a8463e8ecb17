import { Events } from '../log/events.js';

/**
 * Refusals and errors of the forwarder, in the central catalogue's shape so the lead can fold them
 * into src/errors/catalogue.ts. `status` is what an ingest answer uses by default; the Logs
 * Ingestion API answers a full spool with 429 and the Data Collector API with 503 (both with
 * Retry-After), so ingest picks per API for PCL_ERR_SPOOL_FULL.
 */
export interface ForwarderErrorEntry {
  readonly code: `PCL_ERR_${string}`;
  readonly status: number;
  readonly reason: string;
  readonly event: number;
  readonly message: string;
}

export const ForwarderErrors = {
  SPOOL_FULL: {
    code: 'PCL_ERR_SPOOL_FULL',
    status: 503,
    reason: 'spool_full',
    event: Events.SPOOL_FULL,
    message: 'the spool is at its byte limit; retry later',
  },
  SPOOL_IO: {
    code: 'PCL_ERR_SPOOL_IO',
    status: 503,
    reason: 'spool_io',
    event: Events.SPOOL_IO_ERROR,
    message: 'the spool could not write to disk; nothing was accepted',
  },
  SPOOL_CLOSED: {
    code: 'PCL_ERR_SPOOL_CLOSED',
    status: 503,
    reason: 'spool_closed',
    event: Events.LIFECYCLE,
    message: 'the spool is closed (shutting down)',
  },
  SPOOL_INPUT: {
    code: 'PCL_ERR_SPOOL_INPUT',
    status: 500,
    reason: 'spool_input',
    event: Events.INTERNAL_ERROR,
    message: 'an entry cannot be spooled (stream name over 65535 bytes, payload over 4 GiB, or a bad records count)',
  },
} as const satisfies Record<string, ForwarderErrorEntry>;
