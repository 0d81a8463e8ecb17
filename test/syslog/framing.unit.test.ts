import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Framer, FramingError, splitBlock, type FramingMode } from '../../src/syslog/framing.js';

/** Feeds `chunks` to a framer, taking blocks at the given read indices, and returns the messages. */
function frame(chunks: Buffer[], max: number, takeAfter: (i: number) => boolean = () => true): { messages: string[]; framer: Framer } {
  const framer = new Framer(max);
  const messages: string[] = [];
  const drain = (): void => {
    const b = framer.take();
    if (b) splitBlock(b.mode, b.bytes, (s, e) => messages.push(b.bytes.toString('utf8', s, e)));
  };
  chunks.forEach((c, i) => {
    framer.push(c);
    if (takeAfter(i)) drain();
  });
  framer.end();
  drain();
  return { messages, framer };
}

function encode(mode: FramingMode, messages: string[]): Buffer {
  return Buffer.concat(
    messages.map((m) => (mode === 'octet' ? Buffer.concat([Buffer.from(`${Buffer.byteLength(m)} `), Buffer.from(m)]) : Buffer.from(`${m}\n`))),
  );
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

// A message as senders write it: starts with '<' (so newline mode is detected), no LF inside.
const message = fc.string({ unit: 'grapheme', minLength: 0, maxLength: 60 }).map((s) => `<13>${s.replace(/\n/g, ' ')}`);

describe('syslog framing (RFC 6587)', () => {
  it('gives the same messages however a newline-framed stream is cut into reads', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.boolean()), (msgs, cuts, takes) => {
        const stream = encode('newline', msgs);
        const { messages } = frame(splitAt(stream, cuts), 64 * 1024, (i) => takes[i] ?? true);
        expect(messages).toEqual(msgs);
      }),
    );
  });

  it('gives the same messages however an octet-counted stream is cut into reads (LF and any bytes inside messages)', () => {
    const anyMsg = fc.string({ unit: 'binary', minLength: 1, maxLength: 80 });
    fc.assert(
      fc.property(fc.array(anyMsg, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.boolean()), (msgs, cuts, takes) => {
        const stream = encode('octet', msgs);
        const { messages, framer } = frame(splitAt(stream, cuts), 64 * 1024, (i) => takes[i] ?? true);
        expect(framer.mode).toBe('octet');
        expect(messages).toEqual(msgs);
      }),
    );
  });

  it('cuts every message over the limit to the limit, in either mode and however it is read, and keeps the rest of the stream', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<FramingMode>('octet', 'newline'),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (mode, sizes, cuts) => {
          const max = 100;
          const msgs = sizes.map((n, i) => `<1>${String(i).padEnd(n, 'x')}`);
          const { messages, framer } = frame(splitAt(encode(mode, msgs), cuts), max);
          expect(messages).toEqual(msgs.map((m) => m.slice(0, max)));
          expect(framer.counters.truncated).toBe(msgs.filter((m) => m.length > max).length);
        },
      ),
    );
  });

  it('holds at most maxMessageBytes of a never-ending line', () => {
    const framer = new Framer(65_536);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    chunk[0] = 0x3c; // '<': newline framing
    for (let i = 0; i < 160; i++) {
      framer.push(chunk); // 10 MB without a LF
      expect(framer.held).toBeLessThanOrEqual(65_536);
      framer.take();
    }
    framer.push(Buffer.from('tail\n<13>next\n'));
    const b = framer.take();
    const out: string[] = [];
    if (b) splitBlock(b.mode, b.bytes, (s, e) => out.push(b.bytes.toString('latin1', s, e)));
    expect(out).toEqual(['<13>next']);
    expect(framer.counters.truncated).toBe(1);
  });

  it('skips zero-length frames and empty lines, counted', () => {
    expect(frame([Buffer.from('0 5 <1>ab0 ')], 100).messages).toEqual(['<1>ab']);
    const { messages, framer } = frame([Buffer.from('<1>a\n\n\n<1>b\n')], 100);
    expect(messages).toEqual(['<1>a', '<1>b']);
    expect(framer.counters.empty).toBe(2);
  });

  it('splitBlock ends on a block whose count is not a number (the framer never makes one), rest as one message', () => {
    const out: string[] = [];
    const bytes = Buffer.from('5 <1>ab-5 <1>cd');
    splitBlock('octet', bytes, (s, e) => out.push(bytes.toString('latin1', s, e)));
    expect(out).toEqual(['<1>ab', '-5 <1>cd']);
  });

  it('refuses an octet-counted stream whose length is not a number', () => {
    expect(() => new Framer(100).push(Buffer.from('12x <1>hello'))).toThrow(FramingError);
    expect(() => new Framer(100).push(Buffer.from('1234567890123 '))).toThrow(FramingError);
  });

  it('treats a last line without LF as a message when the sender closes', () => {
    expect(frame([Buffer.from('<1>a\n<1>b')], 100).messages).toEqual(['<1>a', '<1>b']);
  });
});
