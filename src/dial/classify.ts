/**
 * Is a resolved address safe to dial for a rule that does not allow private destinations?
 *
 * Only ipaddr.js's `unicast` range counts as public. Everything else is refused, in particular:
 *   IPv4: 0.0.0.0/8 (unspecified), 10/8, 172.16/12, 192.168/16 (private), 127/8 (loopback),
 *         169.254/16 (linkLocal), 100.64/10 (carrierGradeNat), 192.0.0.0/24, 192.0.2/24,
 *         192.88.99/24, 198.18/15 (benchmarking), 198.51.100/24, 203.0.113/24, 240/4 (reserved),
 *         224/4 (multicast), 255.255.255.255 (broadcast), as112, amt.
 *   IPv6: ::, ::1, fe80::/10, fc00::/7 (uniqueLocal), ff00::/8, fec0::/10, 100::/64 (discard),
 *         2001:db8::/32, 2001::/23, 2001:2::/48, orchid, 5f00::/16, 3fff::/20 (reserved/special),
 *         and any address outside 2000::/3 (not allocated for global unicast by IANA).
 *   IPv6 forms that embed an IPv4 address are judged by that IPv4 address, so a name cannot
 *   reach 127.0.0.1 by answering `::ffff:127.0.0.1`:
 *         ::ffff:0:0/96 (ipv4Mapped), ::/96 (ipv4Compatible), ::ffff:0:0:0/96 (rfc6145),
 *         64:ff9b::/96 (nat64), 2002::/16 (6to4), 2001::/32 (teredo: server and client).
 *         64:ff9b:1::/48 (local-use NAT64, RFC 8215) is refused outright.
 *   Their range reads `<form>:<ipv4 range>`, e.g. `ipv4Mapped:loopback`.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface AddressClass {
  readonly isPublic: boolean;
  readonly range: string;
}

const INVALID: AddressClass = Object.freeze({ isPublic: false, range: 'invalid' });

export function classifyAddress(ip: string): AddressClass {
  const kind = isIP(ip);
  if (kind === 4) return classifyV4Octets(parseV4(ip));
  if (kind === 6) return classifyV6(parseV6(ip));
  return INVALID;
}

/** The four octets of an IPv4 address. */
type V4Octets = [number, number, number, number];
/** The eight 16-bit words of an IPv6 address. */
type V6Words = [number, number, number, number, number, number, number, number];

/** ipaddr.js always yields eight words; the check turns that promise into a type. */
function isV6Words(parts: number[]): parts is V6Words {
  return parts.length === 8;
}

/** `ip` was validated by net.isIP: strict dotted decimal, no leading zeros. */
function parseV4(ip: string): V4Octets {
  const parts = ip.split('.');
  return [Number(parts[0]), Number(parts[1]), Number(parts[2]), Number(parts[3])];
}

function classifyV4Octets(octets: number[]): AddressClass {
  const range = new ipaddr.IPv4(octets).range();
  return { isPublic: range === 'unicast', range };
}

function v4FromWords(hi: number, lo: number): number[] {
  return [(hi >>> 8) & 0xff, hi & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
}

/**
 * ipaddr.js rewrites the deprecated `::a.b.c.d` (IPv4-compatible) form to `::ffff:a.b.c.d`, which
 * would mislabel it; parse a dotted tail ourselves and let ipaddr.js handle the hex part only.
 */
function parseV6(ip: string): V6Words {
  const zone = ip.indexOf('%');
  const bare = zone === -1 ? ip : ip.slice(0, zone);
  if (bare.indexOf('.') === -1) return v6Words(bare);
  const lastColon = bare.lastIndexOf(':');
  const octets = parseV4(bare.slice(lastColon + 1));
  const parts = v6Words(bare.slice(0, lastColon + 1) + '0:0');
  parts[6] = (octets[0] << 8) | octets[1];
  parts[7] = (octets[2] << 8) | octets[3];
  return parts;
}

function v6Words(ip: string): V6Words {
  const parts = ipaddr.IPv6.parse(ip).parts.slice();
  if (!isV6Words(parts)) throw new Error(`ipaddr.js parsed ${ip} into ${parts.length} words`);
  return parts;
}

function embedded(form: string, hi: number, lo: number): AddressClass {
  const inner = classifyV4Octets(v4FromWords(hi, lo));
  return { isPublic: inner.isPublic, range: `${form}:${inner.range}` };
}

function classifyV6(p: V6Words): AddressClass {
  const range = new ipaddr.IPv6(p).range();
  switch (range) {
    case 'unicast':
      // ::/96 other than :: and ::1 (matched above as unspecified/loopback).
      if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) {
        return embedded('ipv4Compatible', p[6], p[7]);
      }
      if ((p[0] & 0xe000) !== 0x2000) return { isPublic: false, range: 'reserved' };
      return { isPublic: true, range };
    case 'ipv4Mapped':
      return embedded('ipv4Mapped', p[6], p[7]);
    case 'rfc6145':
      return embedded('rfc6145', p[6], p[7]);
    case 'rfc6052':
      // 64:ff9b::/96 embeds the IPv4 in the last 32 bits; 64:ff9b:1::/48 is site-local NAT64.
      if (p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) return embedded('nat64', p[6], p[7]);
      return { isPublic: false, range: 'nat64LocalUse' };
    case '6to4':
      return embedded('6to4', p[1], p[2]);
    case 'teredo': {
      // Server IPv4 in bits 32..63, client IPv4 obfuscated (inverted) in bits 96..127.
      const server = embedded('teredo', p[2], p[3]);
      if (!server.isPublic) return server;
      return embedded('teredo', ~p[6] & 0xffff, ~p[7] & 0xffff);
    }
    default:
      return { isPublic: false, range };
  }
}
