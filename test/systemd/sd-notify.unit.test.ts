/** When the gateway sends WATCHDOG=1: half of what systemd gives it, and only if meant for this process. */
import { describe, expect, it } from 'vitest';
import { watchdogInterval } from '../../src/runtime/sd-notify.js';

describe('watchdogInterval', () => {
  it('is half of WATCHDOG_USEC, in milliseconds (WatchdogSec=30 -> every 15 s)', () => {
    expect(watchdogInterval('30000000', undefined, 42)).toBe(15_000);
    expect(watchdogInterval('200000', '42', 42)).toBe(100);
  });

  it('is off when systemd set no watchdog, set it for another process, or set something unreadable', () => {
    expect(watchdogInterval(undefined, undefined, 42)).toBe(0);
    expect(watchdogInterval('30000000', '43', 42)).toBe(0);
    expect(watchdogInterval('30s', undefined, 42)).toBe(0);
    expect(watchdogInterval('', undefined, 42)).toBe(0);
  });

  it('never asks for a timer shorter than 1 ms', () => {
    expect(watchdogInterval('1', undefined, 42)).toBe(1);
  });
});
