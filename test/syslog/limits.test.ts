/**
 * What a sender cannot do to the collector: a full spool stops TCP reading (nothing dropped, all
 * delivered once the outage ends); a 10 MB line and a never-ending line are cut to
 * syslog.maxMessageBytes; invalid UTF-8 is kept; a zero-length frame is skipped; a corrupt octet
 * count closes that connection; idle connections are closed; 5,000 connections meet the cap. Each
 * is counted, and the collector keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleSum } from '../helpers/metrics.js';
import { startSyslogFixture, SYSLOG_STREAM, type SyslogFixture } from './fixture.js';

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

/** Writes everything, honouring the socket's backpressure, then half-closes. */
async function writeAll(s: Socket, data: Buffer): Promise<void> {
  const CHUNK = 64 * 1024;
  for (let off = 0; off < data.length; off += CHUNK) {
    if (!s.write(data.subarray(off, off + CHUNK))) await new Promise((r) => s.once('drain', r));
  }
  await new Promise<void>((r) => s.end(r));
}

describe('syslog collector limits', () => {
  let fx: SyslogFixture;
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => sampleSum(await fx.registry.metrics(), name, labels) || 0;

  beforeAll(async () => {
    fx = await startSyslogFixture({
      forwarder: { spool: { maxBytes: 1_048_576, segmentBytes: 65_536, fsync: 'never' }, batch: { maxAgeMs: 200, maxBytes: 262_144 } },
      syslog: { maxConnections: 1_000, idleTimeoutMs: 5_000 },
    });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('a full spool pauses TCP reading; a sender that closes meanwhile loses nothing; after the outage every message arrives', async () => {
    const outage = fx.emu.faults.add({
      api: 'logsIngestion',
      target: 'dcr-00000000000000000000000000sentinel',
      action: { kind: 'status', status: 503, retryAfterSec: 1 },
      times: Number.POSITIVE_INFINITY,
    });
    const N = 6_000;
    // Random text: the spool keeps syslog entries compressed, and repeated padding would compress
    // to almost nothing, so the spool would never fill.
    const lines = Array.from({ length: N }, (_, i) => `<134>Mar  2 11:00:00 fw-bp app[1]: bp ${i} ${randomBytes(250).toString('hex')}\n`);
    const s = await open(fx.port('tcp'));
    const writing = writeAll(s, Buffer.from(lines.join('')));
    try {
      await expect.poll(() => metric('portcullis_syslog_backpressure_total', { listener: 'tcp' }), { timeout: 30_000 }).toBeGreaterThan(0);
      // The spool refused a parsed block for its limit (how full it then is depends on how the
      // reads were cut into blocks: one block of these lines spools to several hundred KB).
      expect(fx.forwarder.spool?.stats().refusedFull ?? 0).toBeGreaterThan(0);
      // While the spool is full, a second sender sends a few lines and closes: the collector has read
      // them (TCP acknowledged them) and must spool them once there is room, not drop them.
      const late = await open(fx.port('tcp'));
      late.end(Array.from({ length: 50 }, (_, i) => `<134>Mar  2 11:00:00 fw-late app[1]: late ${i}\n`).join(''));
      await closed(late);
    } finally {
      // Ends the outage whatever failed above, so the tests after this one do not fail with it.
      outage.cancel();
    }
    await writing;
    const gotLate = await fx.records(SYSLOG_STREAM, 50, (r) => String(r.SyslogMessage).startsWith('late '), 90_000);
    expect(new Set(gotLate.map((r) => r.SyslogMessage)).size).toBe(50);
    const got = await fx.records(SYSLOG_STREAM, N, (r) => String(r.SyslogMessage).startsWith('bp '), 90_000);
    const ids = new Set(got.map((r) => Number(String(r.SyslogMessage).split(' ')[1])));
    expect(ids.size).toBe(N);
    expect(await metric('portcullis_syslog_dropped_total', { listener: 'tcp' })).toBe(0);
  }, 150_000);

  it('cuts a 10 MB line and a never-ending line to maxMessageBytes; the connection goes on', async () => {
    const before = await metric('portcullis_syslog_truncated_total', { listener: 'tcp' });
    const s = await open(fx.port('tcp'));
    const big = Buffer.alloc(10 * 1024 * 1024, 'A');
    big.write('<13>big ', 0);
    await new Promise<void>((r) => s.write(Buffer.concat([big, Buffer.from('\n<13>after the big line\n')]), () => r()));
    const [rec] = await fx.records(SYSLOG_STREAM, 1, (r) => String(r.SyslogMessage).startsWith('big '), 30_000);
    expect(String(rec?.SyslogMessage).length).toBe(65_536 - '<13>'.length);
    await fx.records(SYSLOG_STREAM, 1, (r) => r.SyslogMessage === 'after the big line');
    // Never-ending: 10 MB more without a LF, the connection left open: what is held stays bounded.
    const endless = Buffer.alloc(10 * 1024 * 1024, 'B');
    endless.write('<13>endless ', 0);
    await new Promise<void>((r) => s.write(endless, () => r()));
    await fx.records(SYSLOG_STREAM, 1, (r) => String(r.SyslogMessage).startsWith('endless '), 30_000);
    expect(await metric('portcullis_syslog_truncated_total', { listener: 'tcp' })).toBe(before + 2);
    s.destroy();
  }, 60_000);

  it('keeps invalid UTF-8, skips a zero-length frame, closes a connection whose octet count is not a number', async () => {
    const s = await open(fx.port('tcp'));
    const bad = Buffer.concat([Buffer.from('<13>utf8 '), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(' end')]);
    s.write(Buffer.concat([Buffer.from(`0 ${bad.length} `), bad, Buffer.from('12x <13>garbage')]));
    await closed(s);
    const [rec] = await fx.records(SYSLOG_STREAM, 1, (r) => String(r.SyslogMessage).startsWith('utf8 '));
    expect(rec?.SyslogMessage).toBe('utf8 \uFFFD(\uFFFD end');
    expect(await metric('portcullis_syslog_invalid_utf8_total', { listener: 'tcp' })).toBeGreaterThanOrEqual(1);
    expect(await metric('portcullis_syslog_empty_frames_total', { listener: 'tcp' })).toBeGreaterThanOrEqual(1);
    expect(await metric('portcullis_syslog_connections_closed_total', { listener: 'tcp', reason: 'framing' })).toBe(1);
  });

  it('closes idle connections and meets 5,000 connections with the cap: counted, still serving', async () => {
    const idle = await open(fx.port('tcp'));
    await closed(idle);
    expect(await metric('portcullis_syslog_connections_closed_total', { listener: 'tcp', reason: 'idle_timeout' })).toBeGreaterThanOrEqual(1);

    const sockets: Socket[] = [];
    const ends: Array<Promise<void>> = [];
    for (let i = 0; i < 5_000; i++) {
      const s = await open(fx.port('tcp')).catch(() => null);
      if (!s) break;
      s.on('error', () => undefined);
      sockets.push(s);
      ends.push(closed(s));
    }
    expect(sockets.length).toBe(5_000);
    await expect
      .poll(() => metric('portcullis_syslog_connections_closed_total', { listener: 'tcp', reason: 'connection_limit' }), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(1_000);
    // The idle ones are closed by the idle timeout: nothing is held for ever.
    await Promise.all(ends);
    const s = await open(fx.port('tcp'));
    s.end('<13>Mar  2 11:00:00 h app: after the flood\n');
    await fx.records(SYSLOG_STREAM, 1, (r) => r.SyslogMessage === 'after the flood');
  }, 60_000);
});
