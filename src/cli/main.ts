#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { AGENT_KINDS, renderAgentConfig } from './agent-config.js';
import { runCheckConfig } from './check-config.js';
import { registerCertCommands } from './cert.js';
import { identityFilesCheck, nativeRelayCheck, resolveConfig } from '../config/index.js';
// The probe, not relay/index.js: checking or editing a file must not load the native addon.
import { nativeRelayBuilt } from '../relay/probe.js';
import { forwarderConfigCheck } from '../forwarder/routes.js';
import { errorMessage } from '../util/errors.js';
import { registerManageCommands } from './manage.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command();
program.name('portcullis').description('Egress gateway for Azure Monitor / Log Analytics agents').version(pkg.version);

program
  .command('start')
  .description('run the gateway in the foreground (config: --config, else /etc/portcullis/portcullis.yaml, else built-in default)')
  .option('-c, --config <file>', 'configuration file (YAML)')
  .action(async (opts: { config?: string }) => {
    // Loaded here, not at the top: the gateway's modules load the native relay.
    const { runStart } = await import('./start.js');
    await runStart(opts.config);
  });

program
  .command('info')
  .description('what this installation runs: version, Node, and whether the native tunnel relay and the systemd notify addon load here (and from which file)')
  .action(async () => {
    // Loaded here: it loads the native addons, which the other commands must not.
    const { renderInfo } = await import('../runtime/info.js');
    process.stdout.write(renderInfo().text);
  });

program
  .command('check-config')
  .description('validate a configuration file; prints every error with its key and line')
  .argument('<file>', 'configuration file (YAML)')
  .action((file: string) => {
    process.exitCode = runCheckConfig(file, [nativeRelayCheck(nativeRelayBuilt()), identityFilesCheck, (c) => forwarderConfigCheck(c)], {
      out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
      err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
    });
  });

program
  .command('agent-config')
  .description('print ready-to-paste proxy settings for each kind of agent pointed at this gateway (no secrets: placeholders)')
  .option('-c, --config <file>', 'configuration file (YAML), else /etc/portcullis/portcullis.yaml, else built-in default')
  .option('-a, --address <url>', 'the proxy URL agents use (default: from proxy.listen, a wildcard address becomes this host name)')
  .option('--auth', 'include the variants with proxy credentials (placeholders)', false)
  .option('--agent <kinds...>', `only these: ${AGENT_KINDS.join(', ')}`)
  .action((opts: { config?: string; address?: string; auth: boolean; agent?: string[] }) => {
    const unknown = (opts.agent ?? []).filter((k) => !(AGENT_KINDS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      process.stderr.write(`portcullis agent-config: unknown agent kind ${unknown.join(', ')} (known: ${AGENT_KINDS.join(', ')})\n`);
      process.exitCode = 2;
      return;
    }
    const kinds = AGENT_KINDS.filter((k) => opts.agent === undefined || opts.agent.includes(k));
    let config;
    try {
      ({ config } = resolveConfig(opts.config));
    } catch (err) {
      process.stderr.write(`portcullis agent-config: ${errorMessage(err)}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(renderAgentConfig(config, { auth: opts.auth, kinds, ...(opts.address !== undefined ? { address: opts.address } : {}) }));
  });

program
  .command('doctor')
  .description(
    "check every destination the configuration allows by name, and the forwarder's upstreams, on the gateway's own path (policy, DNS, TCP, TLS with SNI); exit 1 if any fails",
  )
  .option('-c, --config <file>', 'configuration file (YAML), else /etc/portcullis/portcullis.yaml, else built-in default')
  .option('--host <names...>', 'also check these names (host or host:port), e.g. a data collection endpoint under an allowed wildcard')
  .option('--ca-file <file>', 'trust this CA (PEM) as well (forwarder.upstream.caFile is trusted already)')
  .option('--timeout <ms>', 'per step', '5000')
  .action(async (opts: { config?: string; host?: string[]; caFile?: string; timeout: string }) => {
    // Loaded here: the check loads the dialer and policy, which the other commands do not need.
    const { runDoctor, formatDoctor } = await import('../doctor/index.js');
    let config;
    const extraCa: string[] = [];
    try {
      ({ config } = resolveConfig(opts.config));
      for (const file of [opts.caFile, config.forwarder?.upstream.caFile]) if (file !== undefined) extraCa.push(readFileSync(file, 'utf8'));
    } catch (err) {
      process.stderr.write(`portcullis doctor: ${errorMessage(err)}\n`);
      process.exitCode = 2;
      return;
    }
    const rows = await runDoctor(config, { hosts: opts.host ?? [], extraCa, timeoutMs: Math.max(100, Number(opts.timeout) || 5000) });
    const { text, exitCode } = formatDoctor(rows);
    process.stdout.write(text);
    process.exitCode = exitCode;
  });

registerCertCommands(program);
registerManageCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // An unexpected start-up error must end the process, not be swallowed by the crash guards
  // installed for connection handling. (A service that cannot start is said in one line by
  // src/runtime/run.ts, without a stack trace.)
  process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
