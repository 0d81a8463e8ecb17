/** What the emulator accepted and answered, with waiters that wake on new data (no polling). */
import type { EmulatedApi } from './faults.js';

export interface AcceptedRecord {
  api: 'logsIngestion' | 'dataCollector';
  /** DCR immutable id or workspace id. */
  target: string;
  /** Stream name or Log-Type. */
  stream: string;
  record: unknown;
  requestId: string;
  /** Sequence number of the request that carried it (1-based, over all requests). */
  requestSeq: number;
  arrivedAt: number;
  gzip: boolean;
  /** Data Collector only: the time-generated-field header, when sent. */
  timeGeneratedField?: string;
}

export interface RequestLogEntry {
  seq: number;
  api: EmulatedApi | 'admin' | 'unknown';
  method: string;
  path: string;
  target?: string;
  stream?: string;
  status: number;
  /** Error code of the answer (from its body), when it was an error. */
  code?: string;
  requestId: string;
  at: number;
  gzip: boolean;
  /** Bytes on the wire (as sent, possibly compressed). */
  bytes: number;
  /** Body bytes after decoding (gzip), when decoded. */
  decodedBytes?: number;
  records: number;
  /** Which fault answered, if one did. */
  fault?: string;
  clientId?: string;
}

export interface RecordQuery {
  api?: 'logsIngestion' | 'dataCollector';
  target?: string;
  stream?: string;
}

export class EmulatorStore {
  readonly accepted: AcceptedRecord[] = [];
  readonly requests: RequestLogEntry[] = [];
  private seq = 0;
  private waiters: Array<() => void> = [];

  nextSeq(): number {
    this.seq += 1;
    return this.seq;
  }

  addRequest(entry: RequestLogEntry): void {
    this.requests.push(entry);
    this.wake();
  }

  accept(records: AcceptedRecord[]): void {
    for (const r of records) this.accepted.push(r);
    this.wake();
  }

  records(q: RecordQuery = {}): AcceptedRecord[] {
    return this.accepted.filter(
      (r) => (q.api === undefined || r.api === q.api) && (q.target === undefined || r.target === q.target) && (q.stream === undefined || r.stream === q.stream),
    );
  }

  clear(): void {
    this.accepted.length = 0;
    this.requests.length = 0;
  }

  /** Resolves when `predicate()` holds (checked now and after every request); rejects after timeoutMs. */
  waitFor(predicate: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`emulator: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
