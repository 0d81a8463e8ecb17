import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export const SEGMENT_RE = /^seg-(\d{16})\.(log|ack)$/;

export function segmentName(firstId: number, kind: 'log' | 'ack'): string {
  return `seg-${String(firstId).padStart(16, '0')}.${kind}`;
}

/**
 * One segment file and its ack file. The data file is written only while it is the active
 * segment; the ack file gets one record per ack group commit. `live` counts entries not yet
 * durably acknowledged: at 0 the segment (and its ack file) are deleted.
 */
export class Segment {
  readonly path: string;
  readonly ackPath: string;
  size: number;
  live = 0;
  /** Written since the last fdatasync ('interval'/'never' modes). */
  dirty = false;
  ackDirty = false;
  ack: FileHandle | null = null;
  /** Reads in progress: the fd is closed only when they are done. */
  readers = 0;
  /** Ids acknowledged in memory whose ack record failed to reach the disk (retried with the next one). */
  unsyncedAcks: number[] = [];
  deleted = false;
  private closing: Promise<void> | null = null;

  constructor(
    readonly dir: string,
    readonly firstId: number,
    readonly fh: FileHandle,
    size: number,
  ) {
    this.path = join(dir, segmentName(firstId, 'log'));
    this.ackPath = join(dir, segmentName(firstId, 'ack'));
    this.size = size;
  }

  /**
   * `dsync`: every write returns only once its data (and the file size) is on disk, as if
   * fdatasync followed it: a group commit is one trip to the thread pool instead of two.
   */
  static async create(dir: string, firstId: number, dsync: boolean): Promise<Segment> {
    // O_EXCL: a name clash means an id was reused, which must never silently overwrite data.
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (dsync ? constants.O_DSYNC : 0);
    const fh = await open(join(dir, segmentName(firstId, 'log')), flags, 0o666);
    return new Segment(dir, firstId, fh, 0);
  }

  /**
   * The ack file, opened for appending on first use. Returns whether it was just created.
   * `dsync` as for create(): an ack record is durable when its write returns.
   */
  async ackHandle(dsync: boolean): Promise<{ fh: FileHandle; created: boolean }> {
    if (this.ack !== null) return { fh: this.ack, created: false };
    const append = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (dsync ? constants.O_DSYNC : 0);
    let created = true;
    let fh: FileHandle;
    try {
      fh = await open(this.ackPath, append | constants.O_EXCL, 0o666);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
      fh = await open(this.ackPath, append, 0o666);
    }
    if (this.ack !== null) {
      // Another ack opened it meanwhile: keep one handle.
      await fh.close();
      return { fh: this.ack, created: false };
    }
    this.ack = fh;
    return { fh, created };
  }

  /** Positioned read of [offset, offset+length). */
  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    this.readers++;
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw Object.assign(new Error(`short read in ${this.path} at ${offset + done}`), { code: 'EIO' });
        done += bytesRead;
      }
      return buf;
    } finally {
      this.readers--;
      if (this.deleted && this.readers === 0) void this.close();
    }
  }

  /** Closes both handles once no read is in progress (a deleted file stays readable until then). */
  close(): Promise<void> {
    if (this.readers > 0) return Promise.resolve();
    this.closing ??= (async () => {
      await this.fh.close().catch(() => undefined);
      await this.ack?.close().catch(() => undefined);
    })();
    return this.closing;
  }
}
