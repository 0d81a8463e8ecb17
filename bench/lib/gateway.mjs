// The gateway under a bench: its config towards the Azure Monitor emulator, how it is started,
// and reading its log until it says it listens. Shared by bench/forwarder.mjs and bench/syslog.mjs.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(new URL('../..', import.meta.url).pathname);

/**
 * A gateway config forwarding to the emulator (`info`: what test/emulator/main.js prints): allow
 * rule and dns.overrides for its hosts, a plaintext forwarder listener, the spool under `dir`,
 * an Entra client secret, and one Logs Ingestion destination named `destination`. The caller adds
 * the forwarder's routes and identities (and any syslog section).
 */
export function emulatorGatewayConfig(info, { dir, adminPort, workers, fsync, threads, destination }) {
  const dce = new URL(info.logsIngestionEndpoint);
  const login = new URL(info.authorityHost);
  writeFileSync(join(dir, 'secret'), 'emulator-secret');
  return {
    proxy: { listen: ['127.0.0.1:0'], workers },
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: 'info', access: false },
    allow: { presets: [], rules: [{ name: 'emulator', hosts: [dce.hostname, login.hostname], ports: [info.port], allowPrivate: true }] },
    dns: { overrides: { [dce.hostname]: '127.0.0.1', [login.hostname]: '127.0.0.1' } },
    forwarder: {
      listen: '127.0.0.1:0',
      plaintext: true,
      spool: { dir: join(dir, 'spool'), fsync, maxBytes: 8 * 1024 ** 3 },
      pool: { threads },
      upstream: { caFile: info.caFile, authorityHost: info.authorityHost },
      credentials: [{ name: 'main', type: 'clientSecret', tenantId: info.tenantId, clientId: info.clientId, secretFile: join(dir, 'secret') }],
      destinations: [{ name: destination, type: 'logsIngestion', endpoint: dce.origin, dcrId: info.dcrId, credential: 'main' }],
    },
  };
}

/**
 * `portcullis start --config file` as argv and environment: PCL_BENCH_NODE_ARGS adds node flags
 * (e.g. --cpu-prof --cpu-prof-dir=DIR); MALLOC_ARENA_MAX=2 as the systemd unit and the image run it.
 */
export function gatewayCommand(configFile) {
  const nodeArgs = (process.env.PCL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return {
    args: [...nodeArgs, join(REPO, 'dist/cli/main.js'), 'start', '--config', configFile],
    env: { MALLOC_ARENA_MAX: '2', ...process.env },
  };
}

/** For readUntil: `pick(record)` of the first JSON log line whose msg is `msg`. */
export function logLine(msg, pick) {
  return (text) => {
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const rec = JSON.parse(line);
        if (rec.msg === msg) return pick(rec);
      } catch {
        // a partial last line
      }
    }
    return undefined;
  };
}
