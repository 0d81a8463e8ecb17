import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseListenAddress } from '../../src/config/index.js';
import { PortcullisError } from '../../src/util/errors.js';

describe('parseListenAddress', () => {
  it.each([
    ['0.0.0.0:8080', '0.0.0.0', 8080],
    [':8080', '0.0.0.0', 8080],
    ['[::1]:8080', '::1', 8080],
    ['[::]:1', '::', 1],
    ['localhost:65535', 'localhost', 65535],
    [' 10.0.0.5:3128 ', '10.0.0.5', 3128],
  ])('%s → host %s port %d', (s, host, port) => {
    expect(parseListenAddress(s)).toEqual({ host, port });
  });

  it('accepts port 0 (any free port; the bound port is logged)', () => {
    expect(parseListenAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it.each([
    '',
    '8080',
    '0.0.0.0',
    '0.0.0.0:',
    '0.0.0.0:65536',
    '0.0.0.0:80a',
    '::1:8080',
    '[::1]8080',
    '[::1:8080',
    '[nope]:80',
    '10.1:80',
    '300.0.0.1:80',
    'bad_host!:80',
    '0.0.0.0:+80',
  ])('rejects %j with PCL_ERR_CONFIG', (s) => {
    let caught: unknown;
    try {
      parseListenAddress(s);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PortcullisError);
    expect((caught as PortcullisError).code).toBe('PCL_ERR_CONFIG');
    expect((caught as Error).message).toContain(JSON.stringify(s));
  });

  it('round-trips any IPv4/IPv6 address and valid port', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
        const text = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
        expect(parseListenAddress(text)).toEqual({ host: ip, port });
      }),
    );
  });
});
