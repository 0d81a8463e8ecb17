import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compilePolicy, normaliseHost, parseConnectAuthority, targetFromAbsoluteUrl, type Target } from '../../src/policy/index.js';
import { isPortcullisError } from '../../src/util/errors.js';
import { CLIENT, makeConfig } from './helpers.js';

const RUNS = { numRuns: 3000 };

const EXACT = ['crl.microsoft.com', 'login.microsoftonline.com', 'a-b.example.org'];
const SUFFIXES = ['ods.opinsights.azure.com', 'blob.core.windows.net', 'pki.example.org'];

const policy = compilePolicy(
  makeConfig({
    rules: [
      { name: 'exact', hosts: EXACT, ports: [443] },
      { name: 'wild', hosts: SUFFIXES.map((s) => `*.${s}`), ports: [443] },
    ],
  }),
);

/** The reference semantics: equal to an exact entry, or a proper subdomain of a suffix. */
function oracleAllows(host: string): boolean {
  return EXACT.includes(host) || SUFFIXES.some((s) => host.endsWith(`.${s}`));
}

function onlyPortcullisErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isPortcullisError(err)) throw err;
  }
}

// Labels drawn from the allowed names themselves (so near-misses are common), plus look-alikes.
const labelPool = [
  ...new Set([...EXACT, ...SUFFIXES].flatMap((h) => h.split('.'))),
  'evil',
  'com',
  'net',
  'x',
  'ods-',
  'opinsightsazure',
  'evilods',
  'blobcore',
  'windows-net',
  'a_b',
  'xn--bcher-kva',
  '1',
];
const label = fc.oneof(fc.constantFrom(...labelPool), fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/));
const randomCase = (s: string) =>
  fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flips) => [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c)).join(''));
// Hosts built around allowed entries: labels prepended/appended, glued without a dot, or random.
const host = fc
  .oneof(
    fc
      .tuple(fc.array(label, { maxLength: 3 }), fc.constantFrom(...EXACT, ...SUFFIXES), fc.array(label, { maxLength: 2 }))
      .map(([pre, mid, post]) => [...pre, mid, ...post].join('.')),
    fc.tuple(label, fc.constantFrom(...EXACT, ...SUFFIXES)).map(([l, s]) => `${l}${s}`), // no dot: look-alike
    fc.array(label, { minLength: 1, maxLength: 6 }).map((ls) => ls.join('.')),
  )
  .chain((h) => fc.tuple(randomCase(h), fc.boolean()).map(([c, dot]) => (dot ? `${c}.` : c)));

describe('properties', () => {
  it('parsers and decide throw nothing but PortcullisError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), (s) => {
        onlyPortcullisErrors(() => parseConnectAuthority(s));
        onlyPortcullisErrors(() => parseConnectAuthority(`${s}:443`));
        onlyPortcullisErrors(() => targetFromAbsoluteUrl(s));
        onlyPortcullisErrors(() => targetFromAbsoluteUrl(`http://${s}/`));
        expect(() => normaliseHost(s)).not.toThrow();
        expect(() => policy.checkClient(s)).not.toThrow();
        for (const kind of ['name', 'ipv4', 'ipv6'] as const) {
          const t: Target = { host: s, port: 443, kind };
          expect(() => policy.decide({ target: t, client: CLIENT })).not.toThrow();
        }
      }),
      RUNS,
    );
  });

  it('normaliseHost is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(host, fc.string({ unit: 'grapheme' }), fc.ipV4(), fc.ipV6()), (s) => {
        const once = normaliseHost(s);
        if (once !== null) expect(normaliseHost(once)).toBe(once);
      }),
      RUNS,
    );
  });

  it('decide allows exactly the hosts equal to an exact entry or below a wildcard suffix', () => {
    let allowed = 0;
    fc.assert(
      fc.property(host, (h) => {
        let target: Target;
        try {
          target = parseConnectAuthority(`${h}:443`);
        } catch {
          return; // not a valid host: nothing to decide
        }
        const canonical = h.toLowerCase().replace(/\.$/, '');
        expect(target.host).toBe(canonical);
        const want = oracleAllows(canonical);
        if (want) allowed++;
        expect(policy.decide({ target, client: CLIENT }).verdict).toBe(want ? 'allow' : 'deny');
        // and never on another port
        expect(policy.decide({ target: { ...target, port: 444 }, client: CLIENT }).verdict).toBe('deny');
      }),
      RUNS,
    );
    // The generator must reach both sides of the property to mean anything.
    // About 5% of generated hosts land on the allowed side; 2% leaves room for an unlucky seed
    // while still failing if the generator stops producing allowed hosts at all.
    expect(allowed).toBeGreaterThan(RUNS.numRuns / 50);
  });

  it('no numeric spelling of an IPv4 address becomes a name', () => {
    const n = fc.integer({ min: 0, max: 0xffffffff });
    const spellings = fc.oneof(
      n.map((x) => String(x)),
      n.map((x) => `0x${x.toString(16)}`),
      n.map((x) => `0${x.toString(8)}`),
      fc.tuple(fc.nat(255), fc.nat(0xffffff)).map(([a, b]) => `${a}.${b}`),
      fc.tuple(fc.nat(255), fc.nat(255), fc.nat(0xffff)).map(([a, b, c]) => `${a}.${b}.${c}`),
      fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `0x${a.toString(16)}.${b}.0.1`),
    );
    fc.assert(
      fc.property(spellings, (s) => {
        const t = normaliseHost(s);
        // Either refused, or the one canonical dotted-quad spelling of itself.
        if (t !== null) {
          expect(t).toMatch(/^\d{1,3}(\.\d{1,3}){3}$/);
          expect(t).toBe(s);
        }
      }),
      RUNS,
    );
  });
});
