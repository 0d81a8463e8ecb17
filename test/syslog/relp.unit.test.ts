/**
 * RELP framing (src/syslog/relp.ts), as librelp writes frames: any split of a stream into reads
 * gives the same frames; over-long syslog data is cut to the limit and the stream goes on;
 * malformed frames throw (the session closes the connection); offers and responses as librelp
 * reads and writes them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseOffers, RelpFrameReader, RelpProtocolError, rspFrame, type RelpFrame } from '../../src/syslog/relp.js';

const MAX = 512;

function frame(txnr: number, command: string, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(data.length > 0 ? `${txnr} ${command} ${data.length} ` : `${txnr} ${command} 0`), data, Buffer.from('\n')]);
}

function readAll(reader: RelpFrameReader, chunks: Buffer[]): RelpFrame[] {
  return chunks.flatMap((c) => reader.push(c));
}

/** Cuts `buf` at the given offsets (sorted, deduplicated). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

const frameArb = fc.record({
  command: fc.constantFrom('open', 'syslog', 'close', 'syslog', 'syslog'),
  data: fc.uint8Array({ maxLength: MAX * 2 }),
});

describe('RelpFrameReader', () => {
  it('any split of a stream into reads gives the same frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (specs, cuts) => {
        // Control frames stay under their own limit; syslog frames may pass maxMessageBytes.
        const frames = specs.map((s, i) => ({ txnr: i + 1, command: s.command, data: Buffer.from(s.command === 'syslog' ? s.data : s.data.subarray(0, 100)) }));
        const stream = Buffer.concat(frames.map((f) => frame(f.txnr, f.command, f.data)));
        const got = readAll(new RelpFrameReader(MAX), split(stream, cuts));
        const whole = readAll(new RelpFrameReader(MAX), [stream]);
        expect(got).toEqual(whole);
        expect(got.map((f) => f.txnr)).toEqual(frames.map((f) => f.txnr));
        for (const [i, f] of got.entries()) {
          const sent = frames[i];
          if (!sent) throw new Error('missing frame');
          expect(f.command).toBe(sent.command);
          expect(f.data.equals(sent.data.subarray(0, MAX))).toBe(true);
          expect(f.cutFrom).toBe(sent.data.length > MAX ? sent.data.length : undefined);
        }
      }),
    );
  });

  it('reads frames as librelp writes them: open with offers, syslog, close with no data', () => {
    const offers = 'relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog';
    const stream = Buffer.from(`1 open ${offers.length} ${offers}\n2 syslog 5 <13>x\n3 close 0\n`);
    const got = readAll(new RelpFrameReader(MAX), [stream]);
    expect(got.map((f) => [f.txnr, f.command, f.data.toString()])).toEqual([
      [1, 'open', offers],
      [2, 'syslog', '<13>x'],
      [3, 'close', ''],
    ]);
    expect([...parseOffers(got[0]?.data ?? Buffer.alloc(0))]).toEqual([
      ['relp_version', ['0']],
      ['relp_software', ['librelp', '1.11.0', 'http://librelp.adiscon.com']],
      ['commands', ['syslog']],
    ]);
  });

  it('cuts a 10 MB syslog frame to the limit, holding no more than that, and reads on', () => {
    const reader = new RelpFrameReader(MAX);
    const big = Buffer.alloc(10 * 1024 * 1024, 'A');
    const got = readAll(reader, [...split(frame(1, 'syslog', big), [3, 100, 70_000, 5_000_000]), frame(2, 'syslog', Buffer.from('after'))]);
    expect(got).toHaveLength(2);
    expect(got[0]?.data.length).toBe(MAX);
    expect(got[0]?.cutFrom).toBe(big.length);
    expect(got[1]?.data.toString()).toBe('after');
    expect(reader.atBoundary).toBe(true);
  });

  it.each([
    ['no txnr', 'syslog 3 abc\n'],
    ['a txnr of 10 digits', '1234567890 syslog 3 abc\n'],
    ['a command that is not letters', '1 sys-log 3 abc\n'],
    ['a command longer than 32 letters', `1 ${'a'.repeat(33)} 0\n`],
    ['DATALEN missing', '1 syslog \n'],
    ['DATALEN not a number', '1 syslog x3 abc\n'],
    ['no LF where DATALEN ends the data', '1 syslog 2 abc\n'],
    ['a frame without data and a space before LF', '1 close 0 \n'],
    ['an open with 1 MB of offers', `1 open 1048576 `],
  ])('refuses %s', (_what, text) => {
    const reader = new RelpFrameReader(MAX);
    expect(() => reader.push(Buffer.from(text))).toThrow(RelpProtocolError);
  });

  it('writes responses as librelp reads them', () => {
    expect(rspFrame(7, '200 OK').toString()).toBe('7 rsp 6 200 OK\n');
    expect(rspFrame(9, '').toString()).toBe('9 rsp 0\n');
    expect(rspFrame(1, '200 OK\nrelp_version=0\ncommands=syslog').toString()).toBe('1 rsp 37 200 OK\nrelp_version=0\ncommands=syslog\n');
  });
});
