/**
 * The ClientHello reader (src/tls): whatever the split of the bytes into records and reads, the
 * result is the same; truncated or random input never throws and never yields a false ClientHello.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HandshakeStream, parseCertificateList, parseClientHello, parseServerHello, type TlsEvent } from '../../src/tls/index.js';
import { clientHello, clientHelloBody, handshake, records, TLS12, TLS13 } from '../helpers/client-hello.js';

const MAX = 16 * 1024;

/** Push `bytes` in chunks cut at `cuts` and return the first event that is not 'more'. */
function readAll(bytes: Buffer, cuts: number[]): TlsEvent {
  const s = new HandshakeStream(MAX);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  let ev: TlsEvent = { kind: 'more' };
  for (const to of [...points, bytes.length]) {
    if (to <= from) continue;
    s.push(bytes.subarray(from, to));
    from = to;
    ev = s.next();
    if (ev.kind !== 'more') return ev;
  }
  return ev;
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
const hostName = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'));
const grease = fc.integer({ min: 0, max: 15 }).map((i) => ((i << 4) | 0x0a) * 0x0101);
const versionList = fc.array(fc.oneof(fc.constantFrom(0x0301, 0x0302, TLS12, TLS13), grease), { minLength: 1, maxLength: 6 });
const filler = fc.array(fc.tuple(fc.integer({ min: 100, max: 60000 }), fc.uint8Array({ maxLength: 300 })), { maxLength: 4 });

const helloCase = fc.record({
  sni: fc.option(hostName, { nil: null }),
  versions: fc.option(versionList, { nil: undefined }),
  extra: filler,
  fragment: fc.integer({ min: 1, max: 2000 }),
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
});

describe('HandshakeStream + parseClientHello', () => {
  it('reads the same ClientHello whatever the record fragmentation and the reads', () => {
    fc.assert(
      fc.property(helloCase, ({ sni, versions, extra, fragment, cuts }) => {
        // Unique extension types: a duplicate is malformed (RFC 8446 §4.2).
        const seen = new Set<number>([0, 43]);
        const extras = extra.filter(([t]) => !seen.has(t) && seen.add(t)).map(([t, d]): [number, Buffer] => [t, Buffer.from(d)]);
        const body = clientHelloBody({ sni, ...(versions ? { versions } : {}), extra: extras });
        const wire = records(22, handshake(1, body), fragment);
        const ev = readAll(wire, cuts);
        expect(ev.kind).toBe('message');
        if (ev.kind !== 'message') return;
        expect(ev.type).toBe(1);
        expect(ev.end).toBe(wire.length);
        expect(ev.body.equals(body)).toBe(true);
        const hello = parseClientHello(ev.body);
        expect(hello).not.toBeNull();
        expect(hello?.sni).toBe(sni);
        const real = (versions ?? [0x0303, 0x0302, 0x0301, 0x0300]).filter((v) => (v & 0x0f0f) !== 0x0a0a);
        expect(hello?.versions).toEqual([...real].sort((a, b) => b - a));
        expect(hello?.versions[0]).toBe(real.length ? Math.max(...real) : undefined);
      }),
    );
  });

  it('asks for more on every proper prefix of a ClientHello (never an error)', () => {
    fc.assert(
      fc.property(fc.option(hostName, { nil: null }), fc.integer({ min: 1, max: 600 }), fc.nat(), (sni, fragment, cut) => {
        const wire = clientHello({ sni, versions: [TLS13, TLS12] }, fragment);
        const n = cut % wire.length;
        const s = new HandshakeStream(MAX);
        s.push(wire.subarray(0, n));
        expect(s.next().kind).toBe('more');
      }),
    );
  });

  it('never throws on random bytes, and calls a stream that does not start with 0x16 not TLS', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        const b = Buffer.from(bytes);
        const ev = readAll(b, cuts);
        if (b.length > 0 && b[0] !== 0x16) expect(ev).toMatchObject({ kind: 'error', error: 'not_tls' });
        expect(() => parseClientHello(b)).not.toThrow();
        expect(() => parseServerHello(b)).not.toThrow();
        expect(() => parseCertificateList(b)).not.toThrow();
      }),
    );
  });

  it('never throws on a damaged ClientHello: a byte changed or the body cut short', () => {
    fc.assert(
      fc.property(fc.option(hostName, { nil: null }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (sni, at, value, truncate) => {
        const body = clientHelloBody({ sni, versions: [TLS13, TLS12] });
        const i = at % body.length;
        const damaged = truncate ? body.subarray(0, i) : Buffer.from(body).fill(value, i, i + 1);
        let out: ReturnType<typeof parseClientHello> = null;
        expect(() => (out = parseClientHello(damaged))).not.toThrow();
        // Cut short, it parses only when cut exactly where the (optional) extensions begin: then nothing of them is left.
        if (truncate && out !== null) expect(out).toMatchObject({ sni: null, versions: [0x0303, 0x0302, 0x0301, 0x0300] });
        const ev = readAll(records(22, handshake(1, damaged)), []);
        expect(['message', 'error', 'more']).toContain(ev.kind);
      }),
    );
  });

  it('refuses a handshake message larger than the bound instead of waiting for it', () => {
    const s = new HandshakeStream(MAX);
    s.push(records(22, Buffer.from([1, 0x01, 0x00, 0x00])));
    expect(s.next()).toMatchObject({ kind: 'error', error: 'too_large' });
  });

  it('reads SNI case-insensitively, without the root dot, and leaves GREASE out of the versions', () => {
    const hello = parseClientHello(clientHelloBody({ sni: 'WS.ODS.Opinsights.Azure.COM.', versions: [0x2a2a, TLS13, TLS12] }));
    expect(hello).toEqual({ legacyVersion: TLS12, versions: [TLS13, TLS12], sni: 'ws.ods.opinsights.azure.com' });
  });

  it('takes the versions up to legacy_version from a client without supported_versions', () => {
    expect(parseClientHello(clientHelloBody({ legacyVersion: 0x0302 }))?.versions).toEqual([0x0302, 0x0301, 0x0300]);
  });
});
