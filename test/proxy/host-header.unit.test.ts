import { expect, it } from 'vitest';
import { targetFromAbsoluteUrl } from '../../src/policy/index.js';
import { hostHeader } from '../../src/proxy/forward.js';

/** The Host sent upstream for each spelling of the request-target's authority (the real-upstream cases are in framing.test.ts). */
it.each([
  ['http://crl.example.com/x', 'crl.example.com'],
  ['http://crl.example.com:80/x', 'crl.example.com'],
  ['http://CRL.Example.COM./x', 'crl.example.com'],
  ['http://crl.example.com:8080/x', 'crl.example.com:8080'],
  ['http://crl.example.com.:8080/x', 'crl.example.com:8080'],
  ['http://[2001:db8::1]/x', '[2001:db8::1]'],
  ['http://[2001:db8::1]:8080/x', '[2001:db8::1]:8080'],
  ['http://192.0.2.1:81/', '192.0.2.1:81'],
])('%s is sent with Host: %s', (url, host) => {
  expect(hostHeader(targetFromAbsoluteUrl(url))).toBe(host);
});
