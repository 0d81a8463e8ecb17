import { describe, expect, it } from 'vitest';
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/config/errors.js';

const FORWARDER = `forwarder:
  plaintext: true
  credentials: [{ name: m, type: managedIdentity }]
  destinations:
    - { name: sentinel, type: logsIngestion, endpoint: "https://x.westeurope-1.ingest.monitor.azure.com", dcrId: dcr-1, credential: m }
    - { name: legacy, type: dataCollector, workspaceId: "00000000-0000-0000-0000-000000000000", sharedKeyEnv: K }
`;

function issues(text: string): string[] {
  try {
    parseConfig(text, { env: {} });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

describe('syslog config', () => {
  it('fills the defaults of a minimal section', () => {
    const c: PortcullisConfig = parseConfig(
      `${FORWARDER}syslog:\n  listeners: [{ name: u, protocol: udp, listen: "127.0.0.1:5514" }]\n  routes: [{ name: all, to: sentinel, stream: Custom-Syslog }]\n`,
      { env: {} },
    );
    expect(c.syslog).toMatchObject({
      maxMessageBytes: 65_536,
      udpReceiveBufferBytes: 8_388_608,
      idleTimeoutMs: 600_000,
      maxConnections: 4_096,
      routes: [{ name: 'all', match: {}, filter: { dropFacilities: [], minSeverity: 'debug' } }],
    });
  });

  it('names every semantic problem with its path', () => {
    const found = issues(`${FORWARDER}syslog:
  listeners:
    - { name: a, protocol: tls, listen: "0.0.0.0:6514" }
    - { name: a, protocol: tcp, listen: "0.0.0.0:514", tls: { certFile: c, keyFile: k } }
    - { name: b, protocol: udp, listen: "0.0.0.0:514" }
  routes:
    - { name: r, match: { listener: [nope], cidrs: ["10.0.0.0/99"], facility: [local9] }, to: legacy, stream: Custom-Syslog }
    - { name: r, match: { cefVendor: X }, to: missing, stream: Custom-Syslog }
`);
    expect(found).toEqual(
      expect.arrayContaining([
        'syslog.listeners[0].tls: required for a tls listener (certFile, keyFile)',
        'syslog.listeners[1].name: duplicate listener name "a" (also syslog.listeners[0])',
        'syslog.listeners[1].tls: only for a tls or relp listener',
        'syslog.routes[0].to: "legacy" is a dataCollector destination; syslog records go to a logsIngestion destination',
        'syslog.routes[0].match.listener[0]: no syslog listener named "nope"',
        expect.stringMatching(/^syslog\.routes\[0\]\.match\.cidrs\[0\]: .*prefix length/) as unknown as string,
        expect.stringMatching(/^syslog\.routes\[0\]\.match\.facility\[0\]: unknown facility "local9"/) as unknown as string,
        'syslog.routes[1].name: duplicate route name "r" (also syslog.routes[0])',
        'syslog.routes[1].to: no forwarder destination named "missing"',
        'syslog.routes[1].match: cefVendor/cefProduct match CEF messages: give this route table: CommonSecurityLog',
      ]),
    );
    // 514/udp and 514/tcp are different sockets.
    expect(found.some((m) => m.startsWith('syslog.listeners[2]'))).toBe(false);
  });

  it('takes relp listeners, plain or with TLS; a relp listener shares the TCP port space', () => {
    const c: PortcullisConfig = parseConfig(
      `${FORWARDER}syslog:
  listeners:
    - { name: relp, protocol: relp, listen: "127.0.0.1:2514" }
    - { name: relp-tls, protocol: relp, listen: "127.0.0.1:2515", tls: { certFile: c, keyFile: k } }
  routes: [{ name: all, to: sentinel, stream: Custom-Syslog }]
`,
      { env: {} },
    );
    expect(c.syslog?.listeners.map((l) => [l.name, l.protocol, l.tls?.certFile])).toEqual([
      ['relp', 'relp', undefined],
      ['relp-tls', 'relp', 'c'],
    ]);
    expect(
      issues(`${FORWARDER}syslog:
  listeners:
    - { name: t, protocol: tcp, listen: "0.0.0.0:2514" }
    - { name: r, protocol: relp, listen: "0.0.0.0:2514" }
    - { name: u, protocol: udp, listen: "0.0.0.0:2514", tls: { certFile: c, keyFile: k } }
  routes: [{ name: all, to: sentinel, stream: Custom-Syslog }]
`),
    ).toEqual(['syslog.listeners[1].listen: same address as syslog.listeners[0]', 'syslog.listeners[2].tls: only for a tls or relp listener']);
  });

  it('needs a forwarder section', () => {
    expect(issues('syslog:\n  listeners: [{ name: u, protocol: udp, listen: ":514" }]\n  routes: [{ name: r, to: d, stream: s }]\n')).toContain(
      'syslog: needs a forwarder section: syslog records go through its spool to its destinations',
    );
  });
});
