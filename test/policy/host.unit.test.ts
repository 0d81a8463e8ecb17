import { describe, expect, it } from 'vitest';
import { normaliseHost, parseConnectAuthority, targetFromAbsoluteUrl } from '../../src/policy/index.js';

describe('normaliseHost', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.Example.', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['ａｂｃ.com', 'abc.com'], // full-width letters are mapped by UTS #46
    ['_dmarc.example.com', '_dmarc.example.com'],
    ['a_b.example.com', 'a_b.example.com'],
    ['localhost', 'localhost'],
    ['1.2.3.4', '1.2.3.4'],
    ['255.255.255.255', '255.255.255.255'],
    ['[::1]', '::1'],
    ['::1', '::1'],
    ['[2001:DB8:0:0:0:0:0:1]', '2001:db8::1'],
    ['[::ffff:10.1.2.3]', '10.1.2.3'], // IPv4-mapped: it is an IPv4 destination
    ['[::ffff:a01:203]', '10.1.2.3'],
    ['a'.repeat(63) + '.com', 'a'.repeat(63) + '.com'],
  ])('%j → %j', (raw, want) => {
    expect(normaliseHost(raw)).toBe(want);
  });

  it.each([
    '',
    '.',
    'example.com..',
    '.example.com',
    'a..b.com',
    '-a.com',
    'a-.com',
    'a b.com',
    'a%2eb.com', // percent-escapes: someone else's parser would decode them
    'a/b.com',
    'a\\b.com',
    'user@example.com',
    'example.com:443',
    'xn--zz.com', // invalid punycode
    'a'.repeat(64) + '.com',
    `${'a'.repeat(60)}.`.repeat(5) + 'com', // > 253
    // numeric shorthands are neither names nor addresses
    '127.1',
    '0x7f.1',
    '0x7f000001',
    '2130706433',
    '010.0.0.1',
    '1.2.3.04',
    '1.2.3.4.5',
    '256.1.1.1',
    'foo.123',
    'foo.0x1',
    '１２７.０.０.１', // full-width digits would map to 127.0.0.1
    '[1.2.3.4]',
    '[fe80::1%eth0]',
    'fe80::1%25eth0',
    '[::ffff:127.1]',
    '[::1',
    '*.example.com',
    'exa\u0000mple.com',
  ])('%j → null', (raw) => {
    expect(normaliseHost(raw)).toBeNull();
  });
});

describe('parseConnectAuthority', () => {
  it.each([
    ['ws.ods.opinsights.azure.com:443', 'ws.ods.opinsights.azure.com', 443, 'name'],
    ['WS.ODS.opinsights.azure.com.:443', 'ws.ods.opinsights.azure.com', 443, 'name'],
    ['bücher.example:8443', 'xn--bcher-kva.example', 8443, 'name'],
    ['10.0.0.1:80', '10.0.0.1', 80, 'ipv4'],
    ['[::1]:443', '::1', 443, 'ipv6'],
    ['[2001:db8::0:1]:1', '2001:db8::1', 1, 'ipv6'],
    ['[::ffff:127.0.0.1]:443', '127.0.0.1', 443, 'ipv4'],
    ['example.com:65535', 'example.com', 65535, 'name'],
  ])('%j', (authority, host, port, kind) => {
    expect(parseConnectAuthority(authority)).toEqual({ host, port, kind });
  });

  it.each([
    'example.com',
    'example.com:',
    'example.com:0',
    'example.com:65536',
    'example.com:+443',
    'example.com: 443',
    'example.com:443 ',
    'example.com:0x1bb',
    'example.com:123456',
    ':443',
    '::1:443', // unbracketed IPv6 is ambiguous
    '[::1]',
    '[::1]443',
    '[example.com]:443',
    '[1.2.3.4]:443',
    'user@example.com:443',
    'http://example.com:443',
    '127.1:443',
    '0x7f000001:443',
    '2130706433:443',
    '',
  ])('%j → PCL_ERR_BAD_AUTHORITY', (authority) => {
    expect(() => parseConnectAuthority(authority)).toThrow(expect.objectContaining({ code: 'PCL_ERR_BAD_AUTHORITY' }));
  });
});

describe('targetFromAbsoluteUrl', () => {
  it.each([
    ['http://crl.microsoft.com/pki/crl/products/x.crl', 'crl.microsoft.com', 80, 'name'],
    ['HTTP://CRL.Microsoft.com:8080/x?y#z', 'crl.microsoft.com', 8080, 'name'],
    ['http://ocsp.example.com', 'ocsp.example.com', 80, 'name'],
    ['http://ocsp.example.com?x', 'ocsp.example.com', 80, 'name'],
    ['http://[::1]:81/', '::1', 81, 'ipv6'],
    ['http://[::1]/', '::1', 80, 'ipv6'],
    ['http://10.1.2.3/', '10.1.2.3', 80, 'ipv4'],
  ])('%j', (url, host, port, kind) => {
    expect(targetFromAbsoluteUrl(url)).toEqual({ host, port, kind });
  });

  it.each([
    ['https://example.com/', 'PCL_ERR_BAD_SCHEME'],
    ['ftp://example.com/', 'PCL_ERR_BAD_SCHEME'],
    ['/relative/path', 'PCL_ERR_BAD_URL'],
    ['example.com/path', 'PCL_ERR_BAD_URL'],
    ['example.com:80', 'PCL_ERR_BAD_SCHEME'], // reads as scheme "example.com": refused either way
    ['http:example.com', 'PCL_ERR_BAD_URL'],
    ['http://user:pw@example.com/', 'PCL_ERR_BAD_URL'],
    ['http://allowed.com@evil.com/', 'PCL_ERR_BAD_URL'],
    ['http://evil.com\\@allowed.com/', 'PCL_ERR_BAD_URL'],
    ['http://exa mple.com/', 'PCL_ERR_BAD_URL'],
    ['http://example.com:/', 'PCL_ERR_BAD_URL'],
    ['http://example.com:0/', 'PCL_ERR_BAD_URL'],
    ['http://example.com:99999/', 'PCL_ERR_BAD_URL'],
    ['http:///path', 'PCL_ERR_BAD_URL'],
    ['http://127.1/', 'PCL_ERR_BAD_URL'],
    ['http://0x7f000001/', 'PCL_ERR_BAD_URL'],
    ['http://2130706433/', 'PCL_ERR_BAD_URL'],
    ['http://a%2eb.com/', 'PCL_ERR_BAD_URL'],
    ['', 'PCL_ERR_BAD_URL'],
  ])('%j → %s', (url, code) => {
    expect(() => targetFromAbsoluteUrl(url)).toThrow(expect.objectContaining({ code }));
  });
});
