/**
 * RELP over a spool whose disk fills up: a real 1 MiB tmpfs (ENOSPC; mounting needs root, which CI
 * has). Messages that could not be written are not acknowledged: the session is closed (event 714)
 * and the sender sends them again; every acknowledged one was durable. Once the disk has room the
 * same messages, sent again on a new session, are acknowledged and delivered: none lost.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sampleSum } from '../helpers/metrics.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { startSyslogFixture, SYSLOG_STREAM, DCR_SENTINEL, type SyslogFixture } from './fixture.js';
import { encodeFrame, OFFERS, RawClient } from './relp-client.js';

/** An opened RELP session (txnr 1 answered). */
async function openSession(port: number): Promise<RawClient> {
  const c = await RawClient.open(port);
  c.frame(1, 'open', OFFERS);
  await expect.poll(() => c.received).toMatch(/^1 rsp /);
  return c;
}

/** Messages `ids` as txnr 2, 3, ..., in one write. */
function send(c: RawClient, ids: number[]): void {
  // Random text: syslog entries are spooled compressed; padding would never fill the disk.
  c.socket.write(
    Buffer.concat(ids.map((id, k) => encodeFrame(k + 2, 'syslog', `<134>Mar  2 11:00:00 fw-disk app[1]: disk ${id} ${randomBytes(150).toString('hex')}`))),
  );
}

/** The messages of `ids` (sent by send()) answered 200 OK. */
function acked(c: RawClient, ids: number[]): number[] {
  const ok = c.acked();
  return ids.filter((_, k) => ok.has(k + 2));
}

describe('RELP when the spool disk is full', () => {
  let fx: SyslogFixture | undefined;
  let disk: ReturnType<typeof mountTmpfs> = null;
  afterAll(async () => {
    await fx?.close();
    disk?.cleanup();
  });

  it('acknowledges only what is durable, closes the session on the rest, and takes it all once there is room', async () => {
    disk = mountTmpfs('1m', 'the RELP disk-full test');
    if (disk === null) return;
    const mnt = disk.mnt;
    // The spool's own limit is far above the disk: the disk, not the spool, runs out.
    fx = await startSyslogFixture({
      forwarder: { spool: { dir: join(mnt, 'spool'), maxBytes: 256 * 1024 * 1024, segmentBytes: 128 * 1024, fsync: 'always' }, batch: { maxAgeMs: 200 } },
    });
    const registry = fx.registry;
    const notAcked = async () =>
      sampleSum(await registry.metrics(), 'portcullis_syslog_connections_closed_total', { listener: 'relp', reason: 'relp_not_acked' }) || 0;
    // Upstream down: nothing leaves the spool, so it only grows.
    const outage = fx.emu.faults.add({
      api: 'logsIngestion',
      target: DCR_SENTINEL,
      action: { kind: 'status', status: 503, retryAfterSec: 1 },
      times: Number.POSITIVE_INFINITY,
    });
    const ids = Array.from({ length: 6_000 }, (_, i) => i);
    const first = await openSession(fx.port('relp'));
    send(first, ids);
    // The gateway closes it: the disk is full.
    await Promise.race([first.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the gateway did not close the session')), 30_000))]);
    expect(await notAcked()).toBeGreaterThan(0);
    const ackedFirst = acked(first, ids);
    expect(ackedFirst.length).toBeGreaterThan(0);
    expect(ackedFirst.length).toBeLessThan(ids.length);

    // Room again (an operator grows the volume); upstream back.
    disk.resize('256m');
    outage.cancel();
    // The sender sends again what was not acknowledged, on a new session (as librelp does).
    const rest = ids.filter((id) => !ackedFirst.includes(id));
    const second = await openSession(fx.port('relp'));
    send(second, rest);
    await expect.poll(() => acked(second, rest).length, { timeout: 60_000 }).toBe(rest.length);
    // Every message, acknowledged the first time or the second, reaches the emulator (duplicates
    // are allowed: at-least-once; a loss is not).
    const atEmulator = () =>
      new Set(
        fx?.emu
          .records({ target: DCR_SENTINEL, stream: SYSLOG_STREAM })
          .map((r) => String((r.record as Record<string, unknown>).SyslogMessage))
          .filter((m) => m.startsWith('disk '))
          .map((m) => Number(m.split(' ')[1])),
      );
    const missing = (): number[] => {
      const there = atEmulator();
      return ids.filter((id) => !there.has(id));
    };
    await expect.poll(() => missing().length, { timeout: 60_000, interval: 500 }).toBe(0);
    second.socket.destroy();
  }, 180_000);
});
