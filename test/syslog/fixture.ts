/**
 * A ForwarderService and a SyslogService in this process, as the gateway runs them: syslog
 * listeners on 127.0.0.1 (tcp, udp, relp, tls) feeding the forwarder's real spool, pool and sender, which
 * deliver to the Azure Monitor emulator's DCR whose Custom-Syslog and Custom-CommonSecurityLog
 * streams are declared with the tables' columns (the emulator checks every record against them).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import client from 'prom-client';
import { stringify } from 'yaml';
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { createForwarderService, forwarderConfigCheck, type ForwarderService } from '../../src/forwarder/index.js';
import { createSyslogService, type SyslogService } from '../../src/syslog/index.js';
import { testCA } from '../helpers/tls.js';
import { AzureMonitorEmulator, type AcceptedRecord } from '../emulator/emulator.js';
import { COMMON_SECURITY_LOG_COLUMNS, SYSLOG_COLUMNS } from '../emulator/tables.js';
import { CLIENT, prepareForwarder } from '../forwarder/fixture.js';

export const DCR_SENTINEL = 'dcr-00000000000000000000000000sentinel';
export const SYSLOG_STREAM = 'Custom-Syslog';
export const CSL_STREAM = 'Custom-CommonSecurityLog';

export interface SyslogFixture {
  emu: AzureMonitorEmulator;
  forwarder: ForwarderService;
  syslog: SyslogService;
  config: PortcullisConfig;
  registry: client.Registry;
  dir: string;
  caFile: string;
  logger: Logger;
  port(listener: string): number;
  /** Waits (woken by the emulator) for `count` records of a stream (that `where` accepts), and returns those. */
  records(stream: string, count: number, where?: (r: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export interface SyslogFixtureOptions {
  syslog?: Record<string, unknown>;
  forwarder?: Record<string, unknown>;
  emulator?: AzureMonitorEmulator;
  /** The tls listener asks for client certificates of this CA (and refuses senders without one when required). */
  tlsClientCa?: { caFile: string; required: boolean };
}

/**
 * The emulator's Sentinel DCR, a syslog certificate, and the whole gateway config (forwarder with
 * a 'sentinel' destination, syslog listeners and catch-all routes) as a plain object: what
 * startSyslogFixture runs in this process, and what a test writes for a real `portcullis start`.
 */
export async function prepareSyslog(
  emu: AzureMonitorEmulator,
  opts: Pick<SyslogFixtureOptions, 'syslog' | 'forwarder' | 'tlsClientCa'> = {},
): Promise<{ dir: string; caFile: string; config: Record<string, unknown> }> {
  const setup = await prepareForwarder(emu, opts.forwarder ? { forwarder: opts.forwarder } : {});
  emu.addDcr({
    immutableId: DCR_SENTINEL,
    streams: [SYSLOG_STREAM, CSL_STREAM],
    allowedClientIds: [CLIENT],
    columns: { [SYSLOG_STREAM]: SYSLOG_COLUMNS, [CSL_STREAM]: COMMON_SECURITY_LOG_COLUMNS },
  });
  const ca = await testCA();
  const leaf = await ca.issue(['localhost', '127.0.0.1']);
  writeFileSync(join(setup.dir, 'syslog.crt'), leaf.certPem);
  writeFileSync(join(setup.dir, 'syslog.key'), leaf.keyPem);
  const raw = setup.config as { forwarder: { destinations: unknown[] } } & Record<string, unknown>;
  raw.forwarder.destinations.push({
    name: 'sentinel',
    type: 'logsIngestion',
    endpoint: new URL(emu.logsIngestionEndpoint()).origin,
    dcrId: DCR_SENTINEL,
    credential: 'main',
  });
  raw.syslog = {
    listeners: [
      { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0' },
      { name: 'udp', protocol: 'udp', listen: '127.0.0.1:0' },
      { name: 'relp', protocol: 'relp', listen: '127.0.0.1:0' },
      { name: 'relp-tls', protocol: 'relp', listen: '127.0.0.1:0', tls: { certFile: join(setup.dir, 'syslog.crt'), keyFile: join(setup.dir, 'syslog.key') } },
      {
        name: 'tls',
        protocol: 'tls',
        listen: '127.0.0.1:0',
        tls: {
          certFile: join(setup.dir, 'syslog.crt'),
          keyFile: join(setup.dir, 'syslog.key'),
          ...(opts.tlsClientCa ? { clientCaFile: opts.tlsClientCa.caFile, requireClientCert: opts.tlsClientCa.required } : {}),
        },
      },
    ],
    routes: [
      { name: 'cef', match: {}, to: 'sentinel', stream: CSL_STREAM },
      { name: 'syslog', match: {}, to: 'sentinel', stream: SYSLOG_STREAM },
    ],
    ...opts.syslog,
  };
  return { dir: setup.dir, caFile: ca.caFile, config: raw };
}

export async function startSyslogFixture(opts: SyslogFixtureOptions = {}): Promise<SyslogFixture> {
  const emu = opts.emulator ?? (await AzureMonitorEmulator.start());
  const { dir, caFile, config: raw } = await prepareSyslog(emu, opts);
  const config = parseConfig(stringify(raw), { source: 'test', checks: [(c) => forwarderConfigCheck(c, {})], env: {} });
  const { logger } = createLogger({ level: config.log.level }, { dest: 2 });
  const registry = new client.Registry();
  const forwarder = createForwarderService(config, logger, registry, { env: {} });
  await forwarder.start();
  const syslog = createSyslogService(config, logger, registry, () => forwarder.intake());
  try {
    await syslog.start();
  } catch (err) {
    await forwarder.drain(1_000);
    throw err;
  }
  return {
    emu,
    forwarder,
    syslog,
    config,
    registry,
    dir,
    caFile,
    logger,
    port(listener) {
      const a = syslog.addresses.get(listener);
      if (!a) throw new Error(`no listener ${listener}`);
      return a.port;
    },
    async records(stream, count, where = () => true, timeoutMs = 20_000) {
      const matching = (): Array<Record<string, unknown>> =>
        emu
          .records({ target: DCR_SENTINEL, stream })
          .map((r: AcceptedRecord) => r.record as Record<string, unknown>)
          .filter(where);
      await emu.store.waitFor(() => matching().length >= count, timeoutMs, `${count} ${stream} records`);
      return matching();
    },
    async close() {
      await forwarder.drain(2_000).catch(() => undefined);
      if (!opts.emulator) await emu.close();
    },
  };
}
