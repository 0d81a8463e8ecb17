/** TLS protocol versions as the config names them, and their wire numbers. */
export const TLS_VERSIONS = ['1.0', '1.1', '1.2', '1.3'] as const;
export type TlsVersionName = (typeof TLS_VERSIONS)[number];

const WIRE: Readonly<Record<TlsVersionName, number>> = { '1.0': 0x0301, '1.1': 0x0302, '1.2': 0x0303, '1.3': 0x0304 };

export function versionNumber(name: TlsVersionName): number {
  return WIRE[name];
}

/**
 * A wire version as a metrics label value (a closed set): SSL 3.0, TLS 1.0 to 1.3, or `other`
 * (a draft or unknown number).
 */
export type VersionLabel = 'ssl3' | TlsVersionName | 'other';

export function versionLabel(wire: number): VersionLabel {
  switch (wire) {
    case 0x0300:
      return 'ssl3';
    case 0x0301:
      return '1.0';
    case 0x0302:
      return '1.1';
    case 0x0303:
      return '1.2';
    case 0x0304:
      return '1.3';
    default:
      return 'other';
  }
}

/** GREASE values (RFC 8701: 0x0a0a, 0x1a1a, … 0xfafa) are never real versions. */
export function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}
