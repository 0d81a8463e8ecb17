import { describe, expect, it } from 'vitest';
import { RETRYABLE_STATUS, backoffMs, retryAfterMs } from '../../../src/forwarder/upstream/retry.js';
import { AdaptiveLimit } from '../../../src/forwarder/upstream/concurrency.js';

describe('retry policy', () => {
  it('retries only network errors (caller), 408, 429, 500, 502, 503, 504', () => {
    expect([...RETRYABLE_STATUS].sort()).toEqual([408, 429, 500, 502, 503, 504]);
    for (const s of [400, 401, 403, 404, 413, 501]) expect(RETRYABLE_STATUS.has(s)).toBe(false);
  });

  it('honours retry-after-ms, x-ms-retry-after-ms, Retry-After seconds and HTTP dates exactly', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, now)).toBe(1500);
    expect(retryAfterMs({ 'x-ms-retry-after-ms': '250' }, now)).toBe(250);
    expect(retryAfterMs({ 'retry-after': '7' }, now)).toBe(7000);
    expect(retryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now)).toBe(30_000);
    expect(retryAfterMs({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }, now)).toBe(0);
    expect(retryAfterMs({ 'retry-after': 'soon' }, now)).toBeNull();
    expect(retryAfterMs({}, now)).toBeNull();
  });

  it('backs off exponentially with jitter, capped', () => {
    expect(backoffMs(0, 100, 10_000, () => 0)).toBe(50);
    expect(backoffMs(0, 100, 10_000, () => 1)).toBe(100);
    expect(backoffMs(3, 100, 10_000, () => 1)).toBe(800);
    expect(backoffMs(30, 100, 10_000, () => 1)).toBe(10_000);
    expect(backoffMs(30, 100, 10_000, () => 0)).toBe(5_000);
  });
});

describe('adaptive concurrency', () => {
  it('grows by one after a window of successes, halves on throttling, never exceeds max or drops below 1', async () => {
    const l = new AdaptiveLimit(4, 1e9, 1);
    for (let i = 0; i < 20; i++) {
      await l.acquire();
      l.release('success');
    }
    expect(l.limit).toBe(4);
    await l.acquire();
    l.release('throttled');
    expect(l.limit).toBe(2);
    await l.acquire();
    l.release('error');
    await l.acquire();
    l.release('error');
    expect(l.limit).toBe(1);
  });

  it('admits at most `limit` at once; a release lets the next waiter in', async () => {
    const l = new AdaptiveLimit(2, 1e9, 2);
    await l.acquire();
    await l.acquire();
    let third = false;
    const p = l.acquire().then(() => (third = true));
    await Promise.resolve();
    expect(third).toBe(false);
    expect(l.inFlight).toBe(2);
    l.release('success');
    await p;
    expect(third).toBe(true);
    expect(l.inFlight).toBe(2);
  });

  it('a slot given back unused (held off by a Retry-After) is no verdict and returns its request token', async () => {
    // 60 requests/minute: a burst of one, then one a second.
    const l = new AdaptiveLimit(4, 60, 2);
    await l.acquire();
    l.release('unused');
    expect(l.limit).toBe(2);
    expect(l.inFlight).toBe(0);
    // The token came back: the next request may start at once instead of a second later.
    let started = false;
    const p = l.acquire().then(() => (started = true));
    await Promise.resolve();
    expect(started).toBe(true);
    await p;
    l.release('success');
  });
});
