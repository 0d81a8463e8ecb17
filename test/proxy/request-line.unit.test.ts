import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isHeadFault, readFieldSection, readRequestLine, targetFault, versionFault, type HeadFault } from '../../src/proxy/request-line.js';

const MAX = 16 * 1024;
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** What a whole head reads as: the line, then (for a valid line) the field section's end. */
function readHead(buf: Buffer): string {
  const line = readRequestLine(buf, MAX);
  if (line === null) return 'partial';
  if (isHeadFault(line)) return `${line.fault}: ${line.detail}`;
  const scan = readFieldSection(buf, line.end, MAX);
  if (isHeadFault(scan)) return `fields ${scan.fault}: ${scan.detail}`;
  if ('resumeAt' in scan) return `line ${line.method} ${line.target}; fields partial`;
  return `ok ${line.method} ${line.target} ${scan.end}`;
}

function fault(buf: string): HeadFault {
  const r = readRequestLine(b(buf), MAX);
  if (r === null || !isHeadFault(r)) throw new Error(`expected a fault for ${JSON.stringify(buf)}, got ${JSON.stringify(r)}`);
  return r;
}

describe('request line grammar (RFC 9112 §3): method SP request-target SP HTTP-version CRLF', () => {
  it('reads the well-formed lines proxies get', () => {
    expect(readHead(b('CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n'))).toBe('ok CONNECT a.example.com:443 63');
    expect(readHead(b('CONNECT [::1]:443 HTTP/1.0\r\n\r\n'))).toBe('ok CONNECT [::1]:443 30');
    expect(readHead(b('GET http://crl.example.com/a%2Fb?x=1&y=(2) HTTP/1.1\r\nHost: crl.example.com\r\n\r\n'))).toMatch(/^ok GET http:\/\/crl/);
    expect(readHead(b('OPTIONS * HTTP/1.1\r\n\r\n'))).toBe('ok OPTIONS * 22');
  });

  it.each([
    ['no version (HTTP/0.9 shape)', 'CONNECT a.com:443\r\n'],
    ['no version, trailing space', 'CONNECT a.com:443 \r\n'],
    ['two spaces before the target', 'CONNECT  a.com:443 HTTP/1.1\r\n'],
    ['two spaces before the version', 'CONNECT a.com:443  HTTP/1.1\r\n'],
    ['space after the version', 'CONNECT a.com:443 HTTP/1.1 \r\n'],
    ['text after the version', 'CONNECT a.com:443 HTTP/1.1 x\r\n'],
    ['text glued to the version', 'CONNECT a.com:443 HTTP/1.10\r\n'],
    ['tab between parts', 'CONNECT\ta.com:443 HTTP/1.1\r\n'],
    ['tab before the version', 'CONNECT a.com:443\tHTTP/1.1\r\n'],
    ['vertical tab', 'CONNECT a.com:443\vHTTP/1.1\r\n'],
    ['form feed', 'CONNECT a.com:443\fHTTP/1.1\r\n'],
    ['bare LF', 'CONNECT a.com:443 HTTP/1.1\n'],
    ['CR CR LF', 'CONNECT a.com:443 HTTP/1.1\r\r\n'],
    ['bare CR inside', 'CONNECT a.com:443\rHTTP/1.1\r\n'],
    ['leading empty line', '\r\nCONNECT a.com:443 HTTP/1.1\r\n'],
    ['leading LF', '\nCONNECT a.com:443 HTTP/1.1\r\n'],
    ['leading space', ' CONNECT a.com:443 HTTP/1.1\r\n'],
    ['RTSP version', 'GET http://a.com/ RTSP/1.0\r\n'],
    ['ICE version', 'SOURCE http://a.com/ ICE/1.0\r\n'],
    ['lower-case version', 'CONNECT a.com:443 http/1.1\r\n'],
    ['three words before the version', 'CONNECT a.com:443 x HTTP/1.1\r\n'],
    ['empty target', 'CONNECT  HTTP/1.1\r\n'],
    ['NUL in the target', 'CONNECT a.com\0:443 HTTP/1.1\r\n'],
    ['DEL in the target', 'GET http://a.com/\x7f HTTP/1.1\r\n'],
    ['non-ASCII byte in the target', 'GET http://a.com/\xe9 HTTP/1.1\r\n'],
    ['fragment', 'GET http://a.com/#x HTTP/1.1\r\n'],
    ['quote', 'GET http://a.com/a"b HTTP/1.1\r\n'],
    ['pipe', 'GET http://a.com/a|b HTTP/1.1\r\n'],
    ['backslash', 'GET http://a.com/a\\b HTTP/1.1\r\n'],
    ['brace', 'GET http://a.com/a{b HTTP/1.1\r\n'],
    ['caret', 'GET http://a.com/a^b HTTP/1.1\r\n'],
    ['backtick', 'GET http://a.com/a`b HTTP/1.1\r\n'],
    ['angle bracket', 'GET http://a.com/a<b HTTP/1.1\r\n'],
    ['bad percent-encoding', 'GET http://a.com/%zz HTTP/1.1\r\n'],
    ['truncated percent-encoding', 'GET http://a.com/% HTTP/1.1\r\n'],
    ['method with a non-token byte', 'CON\x01NECT a.com:443 HTTP/1.1\r\n'],
    ['method only', 'CONNECT\r\n'],
  ])('refuses %s as a syntax error', (_name, line) => {
    expect(fault(line).fault).toBe('syntax');
  });

  it.each(['HTTP/0.9', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/3.0', 'HTTP/9.9'])('refuses the well-formed but unspoken version %s', (v) => {
    const f = fault(`CONNECT a.com:443 ${v}\r\n`);
    // 0.9 is what Node's parser calls a line without a version; an explicit one is refused the same way.
    expect(f.fault).toBe(v === 'HTTP/0.9' ? 'syntax' : 'version');
  });

  it('waits for the end of the line, and refuses one longer than the head limit', () => {
    expect(readRequestLine(b('CONNECT a.com:443 HTTP/1.1'), MAX)).toBeNull();
    expect(readRequestLine(b('GET http://a.com/' + 'a'.repeat(100)), 64)).toMatchObject({ fault: 'too_large' });
    expect(readRequestLine(b('GET http://a.com/' + 'a'.repeat(100) + ' HTTP/1.1\r\n'), 64)).toMatchObject({ fault: 'too_large' });
  });
});

describe('field lines after the request line', () => {
  const line = 'CONNECT a.com:443 HTTP/1.1\r\n';
  it.each([
    ['obs-fold', 'X: a\r\n b\r\n\r\n'],
    ['space before the colon', 'Host : a\r\n\r\n'],
    ['no colon', 'Hosta\r\n\r\n'],
    ['empty name', ': a\r\n\r\n'],
    ['bare LF ending a field', 'Host: a\n\r\n'],
    ['bare LF ending the head', 'Host: a\r\n\n'],
    ['NUL in a value', 'X: a\0b\r\n\r\n'],
    ['bare CR in a value', 'X: a\rb\r\n\r\n'],
    ['DEL in a value', 'X: a\x7fb\r\n\r\n'],
  ])('refuses %s', (_name, fields) => {
    expect(readHead(b(line + fields))).toMatch(/^fields syntax/);
  });

  it('accepts tabs and obs-text in values, and empty values', () => {
    expect(readHead(b(line + 'X: a\tb\xe9\r\nY:\r\n\r\n'))).toMatch(/^ok CONNECT/);
  });

  it('refuses a field section past the head limit', () => {
    expect(readFieldSection(b(line + 'X: ' + 'a'.repeat(200) + '\r\n\r\n'), line.length, 128)).toMatchObject({ fault: 'too_large' });
  });
});

describe('the version and request-target checks on their own', () => {
  it('speaks HTTP/1.0 and 1.1 only', () => {
    expect(versionFault(1, 1)).toBeNull();
    expect(versionFault(1, 0)).toBeNull();
    expect(versionFault(0, 9)).toMatchObject({ fault: 'syntax' });
    expect(versionFault(2, 0)).toMatchObject({ fault: 'version' });
  });
  it('refuses non-URI characters in the request-target', () => {
    expect(targetFault('http://a.com/x?y=%41')).toBeNull();
    expect(targetFault('http://a.com/a|b')).toMatchObject({ fault: 'syntax' });
    expect(targetFault('http://a.com/\u0100')).toMatchObject({ fault: 'syntax' });
  });
});

/** Request heads worth splitting: valid ones and one of each refused shape. */
const heads = fc.oneof(
  fc.constantFrom(
    'CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n',
    'CONNECT a.com:443 HTTP/1.0\r\n\r\nTLS',
    'GET http://a.com/x HTTP/1.1\r\nHost: a.com\r\n\r\n',
    'CONNECT a.com:443\r\n\r\n',
    'CONNECT a.com:443  HTTP/1.1\r\n\r\n',
    'CONNECT a.com:443 HTTP/1.1 x\r\n\r\n',
    'GET http://a.com/ RTSP/1.0\r\n\r\n',
    'CONNECT a.com:443 HTTP/1.1\r\nX: a\r\n b\r\n\r\n',
    'CONNECT a.com:443 HTTP/1.1\nHost: a\r\n\r\n',
  ),
  // Random lines from the grammar's own alphabet, so near-misses are common.
  fc
    .array(fc.constantFrom('CONNECT', 'GET', ' ', '  ', '\t', 'a.com:443', 'http://a.com/', 'HTTP/1.1', 'HTTP/2.0', '\r\n', '\n', '\r', 'X: y', '#'), {
      minLength: 1,
      maxLength: 10,
    })
    .map((parts) => parts.join('') + '\r\n\r\n'),
);

/** As the front door reads: the field lines already checked are not checked again (`resumeAt`). */
function readIncrementally(whole: Buffer, points: number[]): string {
  let line: ReturnType<typeof readRequestLine> = null;
  let from = 0;
  for (const p of [...points, whole.length]) {
    const buf = whole.subarray(0, p);
    if (line === null) {
      line = readRequestLine(buf, MAX);
      if (line === null) continue;
      if (isHeadFault(line)) return `${line.fault}: ${line.detail}`;
      from = line.end;
    }
    if (isHeadFault(line)) return 'unreachable';
    const scan = readFieldSection(buf, from, MAX);
    if (isHeadFault(scan)) return `fields ${scan.fault}: ${scan.detail}`;
    if ('end' in scan) return `ok ${line.method} ${line.target} ${scan.end}`;
    from = scan.resumeAt;
  }
  return line === null ? 'partial' : `line ${isHeadFault(line) ? '' : `${line.method} ${line.target}`}; fields partial`;
}

it('reads a head the same however it is split into reads', () => {
  fc.assert(
    fc.property(heads, fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
      const whole = b(text);
      const expected = readHead(whole);
      // Feed growing prefixes as reads would deliver them: the first complete answer must be the whole one's.
      const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((x, y) => x - y);
      points.push(whole.length);
      let got = 'partial';
      for (const p of points) {
        got = readHead(whole.subarray(0, p));
        if (!got.startsWith('partial') && !got.includes('fields partial')) break;
      }
      expect(got).toBe(expected);
      expect(readIncrementally(whole, points.slice(0, -1))).toBe(expected);
    }),
    { numRuns: 2_000 },
  );
});

it('reads a head the same when it arrives byte by byte', () => {
  for (const text of ['CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n', 'CONNECT a.com:443  HTTP/1.1\r\n\r\n', 'GET http://a.com/ RTSP/1.0\r\n\r\n']) {
    const whole = b(text);
    let got = 'partial';
    for (let n = 1; n <= whole.length; n++) {
      got = readHead(whole.subarray(0, n));
      if (!got.startsWith('partial') && !got.includes('fields partial')) break;
    }
    expect(got).toBe(readHead(whole));
    expect(readIncrementally(whole, [...whole.keys()].slice(1))).toBe(readHead(whole));
  }
});
