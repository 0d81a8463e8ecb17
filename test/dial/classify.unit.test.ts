import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { classifyAddress } from '../../src/dial/index.js';

const cases: Array<[string, boolean, string]> = [
  // IPv4 public
  ['20.42.1.1', true, 'unicast'],
  ['8.8.8.8', true, 'unicast'],
  ['13.107.6.152', true, 'unicast'],
  // IPv4 non-public
  ['0.0.0.0', false, 'unspecified'],
  ['0.1.2.3', false, 'unspecified'],
  ['10.0.0.1', false, 'private'],
  ['172.16.0.1', false, 'private'],
  ['172.31.255.255', false, 'private'],
  ['192.168.1.1', false, 'private'],
  ['127.0.0.1', false, 'loopback'],
  ['127.255.255.254', false, 'loopback'],
  ['169.254.169.254', false, 'linkLocal'],
  ['100.64.0.1', false, 'carrierGradeNat'],
  ['100.127.255.255', false, 'carrierGradeNat'],
  ['192.0.0.8', false, 'reserved'],
  ['192.0.2.1', false, 'reserved'],
  ['198.18.0.1', false, 'reserved'],
  ['198.19.255.255', false, 'reserved'],
  ['198.51.100.7', false, 'reserved'],
  ['203.0.113.9', false, 'reserved'],
  ['240.0.0.1', false, 'reserved'],
  ['224.0.0.1', false, 'multicast'],
  ['239.255.255.250', false, 'multicast'],
  ['255.255.255.255', false, 'broadcast'],
  // Neighbours of refused ranges stay public
  ['172.32.0.1', true, 'unicast'],
  ['100.128.0.1', true, 'unicast'],
  ['198.20.0.1', true, 'unicast'],
  ['11.0.0.1', true, 'unicast'],
  // IPv6 public
  ['2603:1000::1', true, 'unicast'],
  ['2a01:111:f100::1', true, 'unicast'],
  ['2001:4860:4860::8888', true, 'unicast'],
  // IPv6 non-public
  ['::', false, 'unspecified'],
  ['::1', false, 'loopback'],
  ['fe80::1', false, 'linkLocal'],
  ['fe80::1%eth0', false, 'linkLocal'],
  ['fc00::1', false, 'uniqueLocal'],
  ['fd12:3456::1', false, 'uniqueLocal'],
  ['ff02::1', false, 'multicast'],
  ['2001:db8::1', false, 'reserved'],
  ['100::1', false, 'discard'],
  ['0:1::1', false, 'reserved'], // outside 2000::/3
  ['4000::1', false, 'reserved'],
  // Embedded IPv4: mapped
  ['::ffff:127.0.0.1', false, 'ipv4Mapped:loopback'],
  ['::ffff:7f00:1', false, 'ipv4Mapped:loopback'],
  ['::ffff:10.1.2.3', false, 'ipv4Mapped:private'],
  ['::ffff:169.254.169.254', false, 'ipv4Mapped:linkLocal'],
  ['::ffff:20.42.1.1', true, 'ipv4Mapped:unicast'],
  // IPv4-compatible (deprecated)
  ['::127.0.0.1', false, 'ipv4Compatible:loopback'],
  ['::7f00:1', false, 'ipv4Compatible:loopback'],
  ['::192.168.0.1', false, 'ipv4Compatible:private'],
  ['::20.42.1.1', true, 'ipv4Compatible:unicast'],
  // IPv4-translated (RFC 6145)
  ['::ffff:0:127.0.0.1', false, 'rfc6145:loopback'],
  // NAT64
  ['64:ff9b::127.0.0.1', false, 'nat64:loopback'],
  ['64:ff9b::a00:1', false, 'nat64:private'],
  ['64:ff9b::20.42.1.1', true, 'nat64:unicast'],
  ['64:ff9b:1::1', false, 'nat64LocalUse'],
  // 6to4: 2002:AABB:CCDD::
  ['2002:7f00:1::1', false, '6to4:loopback'],
  ['2002:c0a8:101::1', false, '6to4:private'],
  ['2002:142a:101::1', true, '6to4:unicast'],
  // Teredo: server 65.54.227.120, client obfuscated in last 32 bits
  ['2001:0:4136:e378:8000:63bf:ebd5:fefe', true, 'teredo:unicast'], // client 20.42.1.1
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', false, 'teredo:reserved'], // RFC 4380 example: client 192.0.2.45
  ['2001:0:7f00:1:0:0:0:0', false, 'teredo:loopback'], // server 127.0.0.1
  ['2001:0:4136:e378:0:0:80ff:fffe', false, 'teredo:loopback'], // client ~80ff:fffe = 127.0.0.1
  // Not an IP
  ['example.com', false, 'invalid'],
  ['', false, 'invalid'],
  ['127.1', false, 'invalid'],
  ['010.0.0.1', false, 'invalid'],
];

describe('classifyAddress', () => {
  it.each(cases)('%s → public=%s range=%s', (ip, isPublic, range) => {
    expect(classifyAddress(ip)).toEqual({ isPublic, range });
  });

  it('judges every IPv4-mapped form exactly like its IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const inner = classifyAddress(v4);
        const mapped = classifyAddress(`::ffff:${v4}`);
        expect(mapped.isPublic).toBe(inner.isPublic);
        expect(mapped.range).toBe(`ipv4Mapped:${inner.range}`);
        const nat64 = classifyAddress(`64:ff9b::${v4}`);
        expect(nat64.isPublic).toBe(inner.isPublic);
      }),
      { numRuns: 500 },
    );
  });

  it('never calls a non-2000::/3 IPv6 address public', () => {
    fc.assert(
      fc.property(fc.ipV6(), (v6) => {
        const c = classifyAddress(v6);
        const first = parseInt(v6.split(':')[0] || '0', 16);
        if (c.isPublic && !c.range.includes(':')) expect(first & 0xe000).toBe(0x2000);
      }),
      { numRuns: 500 },
    );
  });
});
