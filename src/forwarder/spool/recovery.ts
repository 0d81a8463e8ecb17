import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log/logger.js';
import { Events } from '../../log/events.js';
import { scanAcks, scanSegment } from './frame.js';
import { SEGMENT_RE, Segment } from './segment.js';
import type { RecoveryReport } from './types.js';

export interface RecoveredEntry {
  id: number;
  stream: string;
  records: number;
  appendedAt: number;
  segment: Segment;
  offset: number;
  length: number;
  sealed: boolean;
  deflated: boolean;
  rawLength: number;
}

export interface Recovered {
  segments: Segment[];
  entries: RecoveredEntry[];
  report: RecoveryReport;
  /** Highest id seen in any segment or ack file (ids are never reused). */
  maxId: number;
}

/**
 * Replays the spool directory: every frame of every segment is verified; damage in the middle is
 * skipped and counted, damage at the end of a segment is cut off (truncate + fsync) and counted;
 * acknowledged entries are dropped; segments with nothing left are deleted, as are ack files
 * without a segment. The caller fsyncs the directory afterwards.
 */
export async function recover(dir: string, logger: Logger): Promise<Recovered> {
  const names = (await readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
  const logs = names.filter((n) => n.endsWith('.log'));
  const acks = new Set(names.filter((n) => n.endsWith('.ack')));
  const report: RecoveryReport = { segments: logs.length, entries: 0, records: 0, tornTails: 0, corruptFrames: 0, lostRecords: 0, lostBytes: 0 };
  const segments: Segment[] = [];
  const entries: RecoveredEntry[] = [];
  let maxId = 0;

  for (const name of logs) {
    const firstId = Number(SEGMENT_RE.exec(name)?.[1]);
    const path = join(dir, name);
    const ackName = name.replace(/\.log$/, '.ack');
    const fh = await open(path, 'r+');
    const buf = await readFile(fh);
    const scan = scanSegment(buf);
    for (const r of scan.corrupt) {
      report.corruptFrames += r.frames;
      report.lostRecords += r.records;
      report.lostBytes += r.bytes;
      logger.error(
        {
          event: Events.SPOOL_CORRUPT_FRAME,
          segment: name,
          offset: r.offset,
          bytes: r.bytes,
          frames: r.frames,
          lostRecords: r.records,
          recordsExact: !r.headerless,
        },
        'spool: damaged frame(s) in the middle of a segment skipped; the records after them were recovered',
      );
    }
    if (scan.tail !== null) {
      const t = scan.tail;
      report.tornTails++;
      report.lostRecords += t.records;
      report.lostBytes += t.bytes;
      await fh.truncate(scan.validEnd);
      await fh.datasync();
      logger.warn(
        {
          event: Events.SPOOL_TORN_TAIL,
          segment: name,
          offset: t.offset,
          bytes: t.bytes,
          frames: t.frames,
          lostRecords: t.records,
          recordsExact: !t.headerless,
        },
        'spool: torn tail cut off (a write that never completed, so never acknowledged)',
      );
    }

    const acked = new Set<number>();
    if (acks.has(ackName)) {
      acks.delete(ackName);
      const ackBuf = await readFile(join(dir, ackName));
      const a = scanAcks(ackBuf);
      for (const id of a.ids) {
        acked.add(id);
        if (id > maxId) maxId = id;
      }
      if (a.damagedBytes > 0) {
        // A lost ack only means a replay (a duplicate upstream), never a loss.
        logger.warn({ event: Events.SPOOL_TORN_TAIL, segment: ackName, bytes: a.damagedBytes }, 'spool: damaged ack record(s) ignored');
        if (a.validEnd < ackBuf.length) {
          const afh = await open(join(dir, ackName), 'r+');
          try {
            await afh.truncate(a.validEnd);
            await afh.datasync();
          } finally {
            await afh.close();
          }
        }
      }
    }

    const segment = new Segment(dir, firstId, fh, scan.validEnd);
    for (const f of scan.frames) {
      const h = f.header;
      if (h.id > maxId) maxId = h.id;
      if (acked.has(h.id)) continue;
      entries.push({
        id: h.id,
        stream: f.stream,
        records: h.records,
        appendedAt: h.appendedAt,
        segment,
        offset: f.payloadOffset,
        length: h.payloadLen,
        sealed: h.sealed,
        deflated: h.deflated,
        rawLength: f.rawLength,
      });
      segment.live++;
      report.entries++;
      report.records += h.records;
    }
    if (segment.live === 0) {
      await fh.close();
      await unlink(path);
      await unlink(segment.ackPath).catch(() => undefined);
    } else {
      segments.push(segment);
    }
  }
  // Ack files whose segment is gone (deleted before the crash removed its ack file).
  for (const orphan of acks) await unlink(join(dir, orphan)).catch(() => undefined);
  // Frames may sit in any order across segments only if ids were reused, which never happens;
  // still, hand entries over in id order so per-stream FIFO holds whatever the file order.
  entries.sort((a, b) => a.id - b.id);
  return { segments, entries, report, maxId };
}
