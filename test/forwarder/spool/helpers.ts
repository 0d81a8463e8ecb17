import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../../../src/log/logger.js';

export interface CapturedLogger {
  logger: Logger;
  /** Every log record written so far, parsed. */
  records: Array<Record<string, unknown>>;
  withEvent(event: number): Array<Record<string, unknown>>;
}

/** A real pino logger whose records the test can read back (synchronous destination). */
export function captureLogger(): CapturedLogger {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, records, withEvent: (event) => records.filter((r) => r.event === event) };
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `pcl-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function payload(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

export function text(p: Uint8Array): string {
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('utf8');
}
