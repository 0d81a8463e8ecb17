import dns from 'node:dns';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Resolver } from '../../src/dial/index.js';
import { codeOf } from '../helpers/errors.js';

type LookupCb = (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void;

/** Counts real getaddrinfo calls made through dns.lookup (the resolver's only DNS path). */
function countLookups(): { calls: () => number; hosts: () => string[] } {
  const spy = vi.spyOn(dns, 'lookup');
  return { calls: () => spy.mock.calls.length, hosts: () => spy.mock.calls.map((c) => String(c[0])) };
}

/** Replaces DNS with a table: host → addresses, or an errno code to fail with, or 'hang'. */
function fakeDns(table: Record<string, string[] | string>): { calls: () => number } {
  const spy = vi.spyOn(dns, 'lookup').mockImplementation(((host: string, _opts: unknown, cb: LookupCb) => {
    const entry = table[host];
    if (entry === 'hang') return; // never answers
    setImmediate(() => {
      if (entry === undefined) cb(Object.assign(new Error('nf'), { code: 'ENOTFOUND' }), []);
      else if (typeof entry === 'string') cb(Object.assign(new Error(entry), { code: entry }), []);
      else
        cb(
          null,
          entry.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
        );
    });
  }) as unknown as typeof dns.lookup);
  return { calls: () => spy.mock.calls.length };
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('Resolver: real getaddrinfo', () => {
  it('resolves localhost and classifies it loopback', async () => {
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 0 });
    const out = await r.resolve('localhost');
    expect(out.length).toBeGreaterThan(0);
    for (const a of out) {
      expect(['127.0.0.1', '::1']).toContain(a.address);
      expect(a.isPublic).toBe(false);
      expect(a.range).toBe('loopback');
      expect(a.family).toBe(a.address === '::1' ? 6 : 4);
    }
  });

  it('a name that does not exist → PCL_ERR_DNS_NOTFOUND', async () => {
    const r = new Resolver({ overrides: {}, timeoutMs: 5000, cacheTtlMs: 1000 });
    expect(await codeOf(r.resolve('does-not-exist.invalid'))).toBe('PCL_ERR_DNS_NOTFOUND');
    expect(r.cacheSize).toBe(0); // failures are not cached
  });

  it('IP literals are returned as-is and classified, without DNS', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 1000 });
    expect(await r.resolve('20.42.1.1')).toEqual([{ address: '20.42.1.1', family: 4, isPublic: true, range: 'unicast' }]);
    expect(await r.resolve('::1')).toEqual([{ address: '::1', family: 6, isPublic: false, range: 'loopback' }]);
    expect(await r.resolve('::ffff:10.0.0.1')).toEqual([{ address: '::ffff:10.0.0.1', family: 6, isPublic: false, range: 'ipv4Mapped:private' }]);
    expect(dnsCalls.calls()).toBe(0);
  });
});

describe('Resolver: overrides', () => {
  it('win over DNS for the exact host, and skip DNS', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({
      overrides: { localhost: '20.42.1.1', 'ws1.ods.opinsights.azure.com': '127.0.0.1' },
      timeoutMs: 1000,
      cacheTtlMs: 0,
    });
    expect(await r.resolve('localhost')).toEqual([{ address: '20.42.1.1', family: 4, isPublic: true, range: 'unicast' }]);
    expect(await r.resolve('ws1.ods.opinsights.azure.com')).toEqual([{ address: '127.0.0.1', family: 4, isPublic: false, range: 'loopback' }]);
    expect(dnsCalls.calls()).toBe(0);
    // Exact match only: a sub-domain goes to DNS.
    expect(await codeOf(r.resolve('x.ws1.ods.opinsights.azure.com'))).toMatch(/^PCL_ERR_DNS/);
    expect(dnsCalls.calls()).toBe(1);
  });

  it('rejects an override that is not an IP', () => {
    expect(() => new Resolver({ overrides: { a: 'b.example' }, timeoutMs: 1, cacheTtlMs: 0 })).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_DNS_OVERRIDE' }),
    );
  });

  it('reconfigure applies new overrides at once and keeps the cached answers (a reload keeps the DNS cache)', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 60_000 });
    await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(1);

    expect(r.reconfigure({ overrides: { localhost: '10.9.8.7' }, timeoutMs: 1000, cacheTtlMs: 60_000 })).toBe(r);
    expect(r.cacheSize).toBe(1);
    expect((await r.resolve('localhost'))[0]).toMatchObject({ address: '10.9.8.7', range: 'private' });

    r.reconfigure({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 60_000 });
    expect((await r.resolve('localhost'))[0]!.range).toBe('loopback');
    expect(dnsCalls.calls()).toBe(1);
  });

  it('reconfigure with another TTL drops the answers cached for the old one', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 60_000 });
    await r.resolve('localhost');
    r.reconfigure({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 30_000 });
    expect(r.cacheSize).toBe(0);
    await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(2);
  });
});

describe('Resolver: cache', () => {
  it('a second resolve within the TTL does not call DNS and returns the same answer', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 60_000 });
    const first = await r.resolve('localhost');
    const second = await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(1);
    expect(second).toBe(first);
    expect(Object.isFrozen(second)).toBe(true);
  });

  it('expires entries after the TTL', async () => {
    const dnsCalls = countLookups();
    // Only the clock is faked: the lookups themselves stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 40 });
    await r.resolve('localhost');
    vi.setSystemTime(Date.now() + 39);
    await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(1);
    vi.setSystemTime(Date.now() + 1);
    await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(2);
  });

  it('cacheTtlMs 0 turns the cache off', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 0 });
    await r.resolve('localhost');
    await r.resolve('localhost');
    expect(dnsCalls.calls()).toBe(2);
    expect(r.cacheSize).toBe(0);
  });

  it('concurrent resolves of one host share one lookup', async () => {
    const dnsCalls = countLookups();
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 0 });
    const [a, b, c] = await Promise.all([r.resolve('localhost'), r.resolve('localhost'), r.resolve('localhost')]);
    expect(dnsCalls.calls()).toBe(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('is bounded: the oldest entry is evicted', async () => {
    const fake = fakeDns({ 'a.test': ['20.0.0.1'], 'b.test': ['20.0.0.2'], 'c.test': ['20.0.0.3', '2603:1000::3'] });
    const r = new Resolver({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 60_000, maxCacheEntries: 2 });
    await r.resolve('a.test');
    await r.resolve('b.test');
    expect(await r.resolve('c.test')).toEqual([
      { address: '20.0.0.3', family: 4, isPublic: true, range: 'unicast' },
      { address: '2603:1000::3', family: 6, isPublic: true, range: 'unicast' },
    ]);
    expect(r.cacheSize).toBe(2);
    expect(fake.calls()).toBe(3);
    await r.resolve('c.test'); // still cached
    await r.resolve('b.test'); // still cached
    expect(fake.calls()).toBe(3);
    await r.resolve('a.test'); // evicted → looked up again
    expect(fake.calls()).toBe(4);
  });

  it('a lookup in flight when a new TTL clears the cache does not refill it', async () => {
    fakeDns({ 'a.test': ['20.0.0.1'] });
    const r = new Resolver({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 60_000 });
    const p = r.resolve('a.test');
    r.reconfigure({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 30_000 });
    await p;
    expect(r.cacheSize).toBe(0);
  });
});

describe('Resolver: errors', () => {
  it('times out a lookup that never answers, then retries on the next call', async () => {
    const fake = fakeDns({ 'slow.test': 'hang' });
    // A fake clock: the timeout fires at exactly timeoutMs, not "soon enough" on a loaded machine.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const r = new Resolver({ overrides: {}, timeoutMs: 100, cacheTtlMs: 60_000 });
    let settled = false;
    const first = codeOf(r.resolve('slow.test')).finally(() => (settled = true));
    await vi.advanceTimersByTimeAsync(99);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await first).toBe('PCL_ERR_DNS_TIMEOUT');
    const second = codeOf(r.resolve('slow.test'));
    await vi.advanceTimersByTimeAsync(100);
    expect(await second).toBe('PCL_ERR_DNS_TIMEOUT');
    expect(fake.calls()).toBe(2);
  });

  it('maps ENODATA to NOTFOUND and other errnos to PCL_ERR_DNS with the errno in the message', async () => {
    fakeDns({ 'nodata.test': 'ENODATA', 'again.test': 'EAI_AGAIN', 'empty.test': [] });
    const r = new Resolver({ overrides: {}, timeoutMs: 1000, cacheTtlMs: 0 });
    expect(await codeOf(r.resolve('nodata.test'))).toBe('PCL_ERR_DNS_NOTFOUND');
    expect(await codeOf(r.resolve('empty.test'))).toBe('PCL_ERR_DNS_NOTFOUND');
    const err = await r.resolve('again.test').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PCL_ERR_DNS' });
    expect((err as Error).message).toContain('EAI_AGAIN');
  });

  it('passes all + verbatim order to getaddrinfo', async () => {
    const spy = vi.spyOn(dns, 'lookup');
    const r = new Resolver({ overrides: {}, timeoutMs: 2000, cacheTtlMs: 0 });
    await r.resolve('localhost');
    expect(spy.mock.calls[0]![1]).toMatchObject({ all: true, order: 'verbatim' });
  });
});
