import { afterAll, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { rawExchange, statusOf } from '../helpers/raw.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { startInProcess, type InProcessGateway } from '../helpers/inprocess.js';

/**
 * Generated request lines and headers against a running gateway. Two servers listen on loopback:
 * `allowed` (the only destination the allowlist names, on one port) and `canary`, which nothing
 * may ever reach. Every name the generators use resolves to 127.0.0.1 (dns.overrides), so a
 * policy mistake would show up as a canary connection, not as a DNS failure.
 */
let allowed: TestServer;
let canary: TestServer;
let gw: InProcessGateway;

const NAMES = ['allowed.example.com', 'evil.example.com', 'allowed.example.com.evil.com', 'xallowed.example.com', 'sub.allowed.example.com', 'localhost'];

beforeAll(async () => {
  allowed = await startTcpEcho();
  canary = await startTcpEcho();
  const overrides: Record<string, string> = {};
  for (const n of NAMES) if (n !== 'localhost') overrides[n] = '127.0.0.1';
  gw = await startInProcess({
    proxy: { timeouts: { headersMs: 1_000, idleMs: 2_000, dnsMs: 300 } },
    allow: { presets: [], rules: [{ name: 'allowed', hosts: ['allowed.example.com'], ports: [allowed.port], allowPrivate: true }] },
    dns: { overrides },
  });
});

afterAll(async () => {
  await gw?.stop();
  await allowed?.close();
  await canary?.close();
});

function hostVariants(): fc.Arbitrary<string> {
  const name = fc.constantFrom(
    ...NAMES,
    'ALLOWED.EXAMPLE.COM',
    'allowed.example.com.',
    'allowed.example.com..',
    '127.0.0.1',
    '127.1',
    '0x7f000001',
    '2130706433',
    '[::1]',
    '[::ffff:127.0.0.1]',
    '::1',
    '[::1',
    'allowed.example.com\u0000',
    '',
  );
  // Weighted towards spellings of the allowed host, so the allowed path is exercised often.
  const allowedSpellings = fc.constantFrom('allowed.example.com', 'ALLOWED.EXAMPLE.COM', 'allowed.example.com.');
  return fc.oneof({ arbitrary: allowedSpellings, weight: 3 }, name, fc.string({ maxLength: 40 }), fc.stringMatching(/^[a-zA-Z0-9.\-[\]:%_]{0,40}$/));
}

function portVariants(): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant(String(allowed.port)), weight: 3 },
    fc.constant(String(canary.port)),
    fc.constantFrom('', '0', '443', '65536', '-1', `0${allowed.port}`, `${allowed.port} `, `+${allowed.port}`, '99999999999999999999'),
    fc.integer({ min: 0, max: 70_000 }).map(String),
  );
}

const targetArb = (): fc.Arbitrary<{ method: string; target: string }> =>
  fc
    .tuple(
      hostVariants(),
      portVariants(),
      fc.oneof({ arbitrary: fc.constant('CONNECT'), weight: 3 }, fc.constantFrom('GET', 'POST', 'PUT', 'TRACE', 'connect', 'FOO')),
      fc.integer({ min: 0, max: 3 }),
    )
    .map(([h, p, m, form]) => {
      const authority = p === '' ? h : `${h}:${p}`;
      if (m.toUpperCase() === 'CONNECT') return { method: m, target: authority };
      const forms = [`http://${authority}/`, authority, `/${authority}`, `https://${authority}/`];
      return { method: m, target: forms[form]! };
    });

const headerLine = fc.oneof(
  fc.constantFrom(
    'Host: allowed.example.com',
    'Content-Length: 5',
    'Transfer-Encoding: chunked',
    'Content-Length: -1',
    'Connection: close',
    'Proxy-Authorization: Basic Zm9vOmJhcg==',
  ),
  fc.tuple(fc.stringMatching(/^[!-9;-~]{1,20}$/), fc.string({ maxLength: 60 })).map(([k, v]) => `${k}: ${v}`),
  fc.string({ maxLength: 80 }),
);

it('no generated request crashes the gateway or reaches a destination outside the allowlist', { timeout: 180_000 }, async () => {
  let established = 0;
  await fc.assert(
    fc.asyncProperty(
      targetArb(),
      fc.array(headerLine, { maxLength: 6 }),
      fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', ''),
      async (t, headers, version) => {
        const head = `${t.method} ${t.target} ${version}\r\n${headers.map((h) => h + '\r\n').join('')}\r\n`;
        const r = await rawExchange(gw.port, head, 1_500);
        const status = statusOf(r.text);
        if (status === 200) {
          established++;
          // Only the allowed destination on the allowed port, through CONNECT, may succeed.
          expect(t.method).toBe('CONNECT');
        }
        expect(canary.connections).toBe(0);
      },
    ),
    { numRuns: 400, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
  );
  // The generators must exercise the allowed path, or "nothing else got through" says little.
  expect(established).toBeGreaterThan(0); // ~13 of 400 runs on average
  // The gateway is still serving: a well-formed request to the allowed destination works.
  const ok = await rawExchange(gw.port, `CONNECT allowed.example.com:${allowed.port} HTTP/1.1\r\n\r\n`, 500);
  expect(statusOf(ok.text)).toBe(200);
  expect(canary.connections).toBe(0);
});
