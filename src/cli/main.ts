#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { runCheckConfig } from './check-config.js';
import { nativeRelayCheck } from '../config/index.js';
// The probe, not relay/index.js: checking or editing a file must not load the native addon.
import { nativeRelayBuilt } from '../relay/probe.js';
import { forwarderConfigCheck } from '../forwarder/routes.js';

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
  .command('check-config')
  .description('validate a configuration file; prints every error with its key and line')
  .argument('<file>', 'configuration file (YAML)')
  .action((file: string) => {
    process.exitCode = runCheckConfig(file, [nativeRelayCheck(nativeRelayBuilt()), (c) => forwarderConfigCheck(c)], {
      out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
      err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
    });
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // An unexpected start-up error must end the process, not be swallowed by the crash guards
  // installed for connection handling. (A service that cannot start is said in one line by
  // src/runtime/run.ts, without a stack trace.)
  process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
