import { describe, expect, it } from 'vitest';
import { descriptorBudget, softNofileLimit, FD_SPARE, FDS_PER_CONNECTION } from '../../src/proxy/descriptors.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            256                  20000                files
Max locked memory         8388608              8388608              bytes
`;

describe('the descriptor budget', () => {
  it('reads the soft RLIMIT_NOFILE from /proc/self/limits text', () => {
    expect(softNofileLimit(LIMITS)).toBe(256);
    expect(softNofileLimit(LIMITS.replace('256   ', 'unlimited'))).toBeNull();
    expect(softNofileLimit('nothing here')).toBeNull();
  });

  it('reads this process’s limit on Linux', () => {
    if (process.platform !== 'linux') return;
    expect(softNofileLimit()).toBeGreaterThan(0);
  });

  it('admits only as many connections as it has two descriptors for, keeping room for refusals and the rest', () => {
    const b = descriptorBudget(256, 25);
    expect(b.refusalReserve).toBe(32);
    expect(b.connections).toBe(Math.floor((256 - 25 - FD_SPARE - 32) / FDS_PER_CONNECTION));
    // Everything admitted, every refusal and the spare fit under the limit.
    expect(b.baseline + b.connections * FDS_PER_CONNECTION + b.refusalReserve + FD_SPARE).toBeLessThanOrEqual(256);
  });

  it('keeps at most 256 descriptors for refusals on a large limit', () => {
    const b = descriptorBudget(200_000, 40);
    expect(b.refusalReserve).toBe(256);
    expect(b.connections).toBe(Math.floor((200_000 - 40 - FD_SPARE - 256) / 2));
  });

  it('never admits fewer than one connection, however small the limit', () => {
    expect(descriptorBudget(16, 30).connections).toBe(1);
  });
});
